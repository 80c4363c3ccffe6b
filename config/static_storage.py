"""Static files in production: compressed, with content hashes in their names, also in ES module imports.

The widget's chat app is native ES modules; without rewriting their ``import`` statements, the hashed
``chat.<hash>.js`` would import the unhashed modules, which a long browser cache keeps stale after a deploy.
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
