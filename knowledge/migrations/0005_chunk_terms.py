"""Postings for BM25: knowledge_chunkterm, kept in step with knowledge_chunk.search_vector by a trigger."""

import django.db.models.deletion
from django.db import migrations, models


TERMS_SQL = """
-- Deleting (or truncating) chunks deletes their postings, set-based. Not a foreign key: checking one for
-- each of the ~50 postings per chunk was most of the cost of loading chunks.
CREATE FUNCTION knowledge_chunk_terms_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM knowledge_chunkterm AS t USING old_rows AS o WHERE t.chunk_id = o.id;
    RETURN NULL;
END $$;
CREATE FUNCTION knowledge_chunk_terms_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- DELETE, not TRUNCATE: a TRUNCATE that lists both tables (Django's flush) has the postings open.
    DELETE FROM knowledge_chunkterm;
    RETURN NULL;
END $$;
CREATE TRIGGER knowledge_chunk_terms_delete AFTER DELETE ON knowledge_chunk
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION knowledge_chunk_terms_delete();
CREATE TRIGGER knowledge_chunk_terms_truncate AFTER TRUNCATE ON knowledge_chunk
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_chunk_terms_truncate();

-- New chunks: one set-based INSERT per statement (transition table). Changed chunks: a row trigger that
-- fires only when the text vector, source or organization changed, and whose DELETE is kept on the
-- chunk_id index even while the postings' statistics are still empty (a sequential scan per row made a
-- bulk update quadratic).
CREATE FUNCTION knowledge_chunk_terms_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO knowledge_chunkterm (chunk_id, organization_id, source_id, lexeme, term_frequency, chunk_length)
    SELECT n.id, n.organization_id, n.source_id, u.lexeme,
           greatest(1, coalesce(cardinality(u.positions), 0)
                       + coalesce(cardinality(array_positions(u.weights, 'A')), 0)),
           length(n.search_vector)
    FROM new_rows AS n, unnest(n.search_vector) AS u
    WHERE n.search_vector IS NOT NULL;
    RETURN NULL;
END $$;

CREATE FUNCTION knowledge_chunk_terms_update() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
BEGIN
    IF OLD.search_vector IS NOT NULL THEN
        DELETE FROM knowledge_chunkterm WHERE chunk_id = OLD.id;
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

CREATE TRIGGER knowledge_chunk_terms_insert AFTER INSERT ON knowledge_chunk
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION knowledge_chunk_terms_insert();
CREATE TRIGGER knowledge_chunk_terms_update AFTER UPDATE OF search_vector, source_id, organization_id
    ON knowledge_chunk FOR EACH ROW
    WHEN (OLD.search_vector IS DISTINCT FROM NEW.search_vector OR OLD.source_id IS DISTINCT FROM NEW.source_id
          OR OLD.organization_id <> NEW.organization_id)
    EXECUTE FUNCTION knowledge_chunk_terms_update();

INSERT INTO knowledge_chunkterm (chunk_id, organization_id, source_id, lexeme, term_frequency, chunk_length)
SELECT c.id, c.organization_id, c.source_id, u.lexeme,
       greatest(1, coalesce(cardinality(u.positions), 0) + coalesce(cardinality(array_positions(u.weights, 'A')), 0)),
       length(c.search_vector)
FROM knowledge_chunk AS c, unnest(c.search_vector) AS u
WHERE c.search_vector IS NOT NULL;
ANALYZE knowledge_chunkterm;
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS knowledge_chunk_terms_delete ON knowledge_chunk;
DROP TRIGGER IF EXISTS knowledge_chunk_terms_truncate ON knowledge_chunk;
DROP FUNCTION IF EXISTS knowledge_chunk_terms_delete();
DROP FUNCTION IF EXISTS knowledge_chunk_terms_truncate();
DROP TRIGGER IF EXISTS knowledge_chunk_terms_insert ON knowledge_chunk;
DROP TRIGGER IF EXISTS knowledge_chunk_terms_update ON knowledge_chunk;
DROP FUNCTION IF EXISTS knowledge_chunk_terms_insert();
DROP FUNCTION IF EXISTS knowledge_chunk_terms_update();
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
                        on_delete=django.db.models.deletion.DO_NOTHING,
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
