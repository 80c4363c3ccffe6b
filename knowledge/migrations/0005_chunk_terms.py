"""Postings for BM25: knowledge_chunkterm, kept in step with knowledge_chunk.search_vector by a trigger."""

import django.db.models.deletion
from django.db import migrations, models


TERMS_SQL = """
-- The database cascades (not only Django): raw DELETEs of chunks also take their postings with them.
ALTER TABLE knowledge_chunkterm ADD CONSTRAINT chunkterm_chunk_fk FOREIGN KEY (chunk_id)
    REFERENCES knowledge_chunk (id) ON DELETE CASCADE;

CREATE FUNCTION knowledge_chunk_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.search_vector IS NOT DISTINCT FROM OLD.search_vector
           AND NEW.source_id IS NOT DISTINCT FROM OLD.source_id
           AND NEW.organization_id = OLD.organization_id THEN
            RETURN NULL;
        END IF;
        DELETE FROM knowledge_chunkterm WHERE chunk_id = NEW.id;
    END IF;
    IF NEW.search_vector IS NOT NULL THEN
        INSERT INTO knowledge_chunkterm (chunk_id, organization_id, source_id, lexeme, term_frequency, chunk_length)
        SELECT NEW.id, NEW.organization_id, NEW.source_id, u.lexeme,
               greatest(1, coalesce(cardinality(u.positions), 0)
                           + coalesce(cardinality(array_positions(u.weights, 'A')), 0)),
               length(NEW.search_vector)
        FROM unnest(NEW.search_vector) AS u;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER knowledge_chunk_terms AFTER INSERT OR UPDATE OF search_vector, source_id, organization_id
    ON knowledge_chunk FOR EACH ROW EXECUTE FUNCTION knowledge_chunk_terms();

INSERT INTO knowledge_chunkterm (chunk_id, organization_id, source_id, lexeme, term_frequency, chunk_length)
SELECT c.id, c.organization_id, c.source_id, u.lexeme,
       greatest(1, coalesce(cardinality(u.positions), 0) + coalesce(cardinality(array_positions(u.weights, 'A')), 0)),
       length(c.search_vector)
FROM knowledge_chunk AS c, unnest(c.search_vector) AS u
WHERE c.search_vector IS NOT NULL;
ANALYZE knowledge_chunkterm;
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS knowledge_chunk_terms ON knowledge_chunk;
DROP FUNCTION IF EXISTS knowledge_chunk_terms();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0004_vectors_stored_inline"),
    ]

    operations = [
        migrations.CreateModel(
            name="ChunkTerm",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("organization_id", models.BigIntegerField()),
                ("source_id", models.BigIntegerField(null=True)),
                ("lexeme", models.TextField()),
                ("term_frequency", models.FloatField()),
                ("chunk_length", models.FloatField()),
                (
                    "chunk",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="knowledge.chunk",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["lexeme", "organization_id", "source_id"],
                        include=("chunk", "term_frequency", "chunk_length"),
                        name="chunkterm_postings",
                    ),
                    models.Index(fields=["chunk"], name="chunkterm_chunk"),
                ],
            },
        ),
        migrations.RunSQL(TERMS_SQL, REVERSE_SQL),
    ]
