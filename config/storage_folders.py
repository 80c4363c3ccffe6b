"""Deleting a folder of files through Django's storage API, on the local disk and in object storage alike."""

from __future__ import annotations

from django.core.files.storage import Storage


def storage_delete_folder(storage: Storage, folder: str) -> int:
    """Delete every file under ``folder`` (recursively); returns how many. A folder that does not exist is
    empty. Object storage has no folders: listing a prefix finds the objects."""
    try:
        directories, files = storage.listdir(folder)
    except FileNotFoundError:
        return 0
    deleted = 0
    for name in files:
        storage.delete(f"{folder.rstrip('/')}/{name}")
        deleted += 1
    for directory in directories:
        deleted += storage_delete_folder(storage, f"{folder.rstrip('/')}/{directory}")
    return deleted
