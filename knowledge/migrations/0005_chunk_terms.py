"""Postings for BM25: knowledge_chunkterm, kept in step with knowledge_chunk.search_vector by a trigger."""

import django.db.models.deletion
from django.db import migrations, models


TERMS_SQL = """
-- The database cascades (not only Django): raw DELETEs of chunks also take their postings with them.
ALTER TABLE knowledge_chunkterm ADD CONSTRAINT chunkterm_chunk_fk FOREIGN KEY (chunk_id)
    REFERENCES knowledge_chunk (id) ON DELETE CASCADE;

-- Statement-level triggers with transition tables: one set-based DELETE/INSERT per statement, so bulk
-- loads and re-syncs stay linear (a row-level trigger re-planned a DELETE per row against a table whose
-- statistics were still empty and went quadratic).
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

CREATE FUNCTION knowledge_chunk_terms_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One statement: the DELETE sees only the old postings (same snapshot), the INSERT adds the new ones.
    WITH changed AS (
        SELECT n.id, n.organization_id, n.source_id, n.search_vector
        FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
        WHERE n.search_vector IS DISTINCT FROM o.search_vector
           OR n.source_id IS DISTINCT FROM o.source_id OR n.organization_id <> o.organization_id
    ), removed AS (
        DELETE FROM knowledge_chunkterm AS t USING changed AS c WHERE t.chunk_id = c.id
    )
    INSERT INTO knowledge_chunkterm (chunk_id, organization_id, source_id, lexeme, term_frequency, chunk_length)
    SELECT c.id, c.organization_id, c.source_id, u.lexeme,
           greatest(1, coalesce(cardinality(u.positions), 0)
                       + coalesce(cardinality(array_positions(u.weights, 'A')), 0)),
           length(c.search_vector)
    FROM changed AS c, unnest(c.search_vector) AS u
    WHERE c.search_vector IS NOT NULL;
    RETURN NULL;
END $$;

CREATE TRIGGER knowledge_chunk_terms_insert AFTER INSERT ON knowledge_chunk
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION knowledge_chunk_terms_insert();
CREATE TRIGGER knowledge_chunk_terms_update AFTER UPDATE ON knowledge_chunk
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_chunk_terms_update();

INSERT INTO knowledge_chunkterm (chunk_id, organization_id, source_id, lexeme, term_frequency, chunk_length)
SELECT c.id, c.organization_id, c.source_id, u.lexeme,
       greatest(1, coalesce(cardinality(u.positions), 0) + coalesce(cardinality(array_positions(u.weights, 'A')), 0)),
       length(c.search_vector)
FROM knowledge_chunk AS c, unnest(c.search_vector) AS u
WHERE c.search_vector IS NOT NULL;
ANALYZE knowledge_chunkterm;
"""

REVERSE_SQL = """
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
