"""Knowledge sources over the API: what a developer sends to add knowledge and reads to watch it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import URLValidator
from rest_framework import serializers

from accounts.api.inputs import InputModelSerializer, InputSerializer
from knowledge.exceptions import IngestError
from knowledge.models import Source, SourceKind
from knowledge.services import faq_pairs_from_csv, source_input_problems, upload_problem


class FaqPairSerializer(InputSerializer):
    question = serializers.CharField(max_length=1000)
    answer = serializers.CharField(max_length=20_000)


class SourceSerializer(InputModelSerializer):
    """A source and its ingestion status (chatbots adds the bots that answer from it)."""

    faq_pairs = FaqPairSerializer(
        many=True, required=False,
        help_text="FAQ sources: the question/answer pairs (replaces all pairs when changed).",
    )  # fmt: skip
    # A plain CharField with one validator: DRF's URLField adds its own URLValidator to the model's, and
    # a bad address was answered with "Enter a valid URL." twice.
    url = serializers.CharField(
        required=False, allow_blank=True, max_length=2000,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Page URL, or the website's start URL.",
    )  # fmt: skip
    faq_csv = serializers.FileField(
        write_only=True, required=False,
        help_text="FAQ sources: a CSV with columns question and answer (multipart); its pairs join faq_pairs.",
    )  # fmt: skip
    file_name = serializers.SerializerMethodField()

    class Meta:
        model = Source
        fields = [
            "id", "kind", "title", "file", "file_name", "url", "text", "faq_pairs", "faq_csv",
            "max_pages", "max_depth", "resync_hours", "status", "progress", "status_reason", "chunk_count",
            "token_count", "page_count", "media_seconds", "text_search_config", "synced_at", "created_at",
            "updated_at",
        ]  # fmt: skip
        read_only_fields = [
            "id", "status", "progress", "status_reason", "chunk_count", "token_count", "page_count",
            "media_seconds", "text_search_config", "synced_at", "created_at", "updated_at",
        ]  # fmt: skip
        extra_kwargs = {
            "file": {"write_only": True, "required": False},
            "text": {"required": False},
            "max_pages": {"min_value": 1, "max_value": 10_000},
            "max_depth": {"min_value": 0, "max_value": 10},
            "resync_hours": {"max_value": 24 * 365},
            "title": {
                "required": False,
                "help_text": "Defaults to the file name, the address or the text's start.",
            },
        }

    def get_file_name(self, source: Source) -> str:
        return source.file.name.rsplit("/", 1)[-1] if source.file else ""

    def to_representation(self, source: Source) -> dict[str, Any]:
        data = super().to_representation(source)
        if source.kind == SourceKind.FAQ:
            data["faq_pairs"] = [{"question": p.question, "answer": p.answer} for p in source.faq_pairs.all()]
        else:
            data.pop("faq_pairs")
        return data

    def validate_file(self, upload: Any) -> Any:
        if upload is not None and (problem := upload_problem(name=upload.name, size=upload.size)):
            raise serializers.ValidationError(problem)
        return upload

    def validate_faq_csv(self, upload: Any) -> list[tuple[str, str]]:
        if upload.size > settings.KNOWLEDGE_MAX_FILE_BYTES:
            raise serializers.ValidationError(upload_problem(name=upload.name, size=upload.size))
        try:
            return faq_pairs_from_csv(upload.read())
        except IngestError as exc:
            raise serializers.ValidationError(exc.reason) from None

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        source: Source | None = self.instance
        if source is not None and "kind" in data and data["kind"] != source.kind:
            raise serializers.ValidationError(
                {"kind": "The kind of a source cannot change; add a new source."}
            )
        kind = data.get("kind", source.kind if source else None)
        pairs = None
        if "faq_pairs" in data or "faq_csv" in data or source is None:
            pairs = [(p["question"], p["answer"]) for p in data.pop("faq_pairs", None) or []]
            pairs += data.pop("faq_csv", [])
            if pairs or kind == SourceKind.FAQ:
                data["faq_pairs"] = pairs

        def current(field: str) -> Any:
            return data.get(field, getattr(source, field) if source else None)

        problems = source_input_problems(
            kind=kind, file=current("file"), url=current("url"), text=current("text"),
            resync_hours=current("resync_hours"), faq_pairs=pairs,
        )  # fmt: skip
        if problems:
            raise serializers.ValidationError(problems)
        return data
