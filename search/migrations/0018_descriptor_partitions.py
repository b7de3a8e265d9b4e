"""The descriptors move from search_faceimage.embedding to search_facedescriptor, partitioned by engine and, within
each engine, by a hash of the gallery, with the engine's HNSW index on every leaf (docs/partitions.md).

Django cannot declare partitions, so the table is SQL and the model's state is declared beside it. The whole move is
one transaction (PostgreSQL's DDL is transactional): writes to search_faceimage wait from its first statement, reads
of the old column go on until the column is dropped at its end, and the new table is visible to nobody before it
holds every descriptor with its indexes built. No moment exists where a gallery returns nothing.

The layout is written out here, not read from the engine registry or search.index: a migration keeps describing
the schema it made whatever the code becomes.
"""

import django.db.models.deletion
import pgvector.django.vector
from django.db import migrations, models

# engine → (short name in the partitions' names, operator class of its metric)
ENGINES = {"dlib-resnet-v1": ("dlib", "vector_l2_ops"), "yunet-sface-int8": ("sface", "vector_cosine_ops")}
MODULUS = 8
HNSW = "WITH (m = 16, ef_construction = 128)"


def _forward() -> list[str]:
    engines = ", ".join(f"'{engine}'" for engine in ENGINES)
    statements = [
        # Writers wait until the move commits (a face enrolled meanwhile would miss the copy); readers go on.
        "LOCK TABLE search_faceimage IN SHARE MODE",
        f"""DO $$ DECLARE unknown text; BEGIN
            SELECT string_agg(DISTINCT engine, ', ') INTO unknown FROM search_faceimage
            WHERE engine NOT IN ({engines});
            IF unknown IS NOT NULL THEN
                RAISE EXCEPTION 'Face images of engine(s) % have no descriptor partition: add one for each to '
                    'migration search 0018 before migrating', unknown;
            END IF;
        END $$""",
        """CREATE TABLE search_facedescriptor (
            face_image_id bigint NOT NULL,
            gallery_id bigint NOT NULL,
            profile_id bigint NOT NULL,
            engine varchar(40) NOT NULL,
            minor_at_enrolment boolean NOT NULL,
            embedding vector(128) NOT NULL,
            CONSTRAINT search_facedescriptor_pkey PRIMARY KEY (face_image_id, engine, gallery_id)
        ) PARTITION BY LIST (engine)""",
        # Counting a gallery's faces and its signature read this index alone (on every leaf).
        "CREATE INDEX search_facedescriptor_gallery ON search_facedescriptor (gallery_id, face_image_id)",
    ]
    for engine, (short, _) in ENGINES.items():
        statements.append(
            f"CREATE TABLE search_facedescriptor_{short} PARTITION OF search_facedescriptor"
            f" FOR VALUES IN ('{engine}') PARTITION BY HASH (gallery_id)"
        )
        statements += [
            f"CREATE TABLE search_facedescriptor_{short}_{remainder} PARTITION OF search_facedescriptor_{short}"
            f" FOR VALUES WITH (MODULUS {MODULUS}, REMAINDER {remainder})"
            for remainder in range(MODULUS)
        ]
    # The rows first and the graphs after: one build per leaf is far faster than inserting into a graph.
    statements.append(
        "INSERT INTO search_facedescriptor (face_image_id, gallery_id, profile_id, engine, minor_at_enrolment, embedding)"
        " SELECT id, gallery_id, profile_id, engine, minor_at_enrolment, embedding FROM search_faceimage"
    )
    for short, opclass in ENGINES.values():
        statements.append(
            f"CREATE INDEX face_descriptor_{short}_hnsw ON ONLY search_facedescriptor_{short}"
            f" USING hnsw (embedding {opclass}) {HNSW}"
        )
        for remainder in range(MODULUS):
            statements += [
                f"CREATE INDEX face_descriptor_{short}_hnsw_{remainder} ON search_facedescriptor_{short}_{remainder}"
                f" USING hnsw (embedding {opclass}) {HNSW}",
                f"ALTER INDEX face_descriptor_{short}_hnsw ATTACH PARTITION face_descriptor_{short}_hnsw_{remainder}",
            ]
    statements += [
        # Added after the copy: checked by one join instead of a trigger per row, and no deferred check left pending
        # (PostgreSQL builds no index on a table with pending trigger events). Deferred, as Django's keys are, so
        # that a restore loads the tables in any order.
        "ALTER TABLE search_facedescriptor ADD CONSTRAINT search_facedescriptor_face_image_id_fk"
        " FOREIGN KEY (face_image_id) REFERENCES search_faceimage (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED",
        # The search's exact-scan rule reads the planner's estimate: give it the leaves' statistics now.
        "ANALYZE search_facedescriptor",
        "DROP INDEX face_embedding_dlib_hnsw",
        "DROP INDEX face_embedding_sface_hnsw",
        "ALTER TABLE search_faceimage DROP COLUMN embedding",
    ]
    return statements


def _backward() -> list[str]:
    statements = [
        "ALTER TABLE search_faceimage ADD COLUMN embedding vector(128)",
        "UPDATE search_faceimage f SET embedding = d.embedding FROM search_facedescriptor d WHERE d.face_image_id = f.id",
        "ALTER TABLE search_faceimage ALTER COLUMN embedding SET NOT NULL",
    ]
    statements += [
        f"CREATE INDEX face_embedding_{short}_hnsw ON search_faceimage USING hnsw (embedding {opclass}) {HNSW}"
        f" WHERE engine = '{engine}'"
        for engine, (short, opclass) in ENGINES.items()
    ]
    statements.append("DROP TABLE search_facedescriptor")
    return statements


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0017_lawful_use"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(_forward(), reverse_sql=_backward())],
            state_operations=[
                migrations.CreateModel(
                    name="FaceDescriptor",
                    fields=[
                        (
                            "face_image",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                primary_key=True,
                                related_name="descriptor",
                                serialize=False,
                                to="search.faceimage",
                            ),
                        ),
                        ("gallery_id", models.BigIntegerField()),
                        ("profile_id", models.BigIntegerField()),
                        ("engine", models.CharField(max_length=40)),
                        ("minor_at_enrolment", models.BooleanField(default=False)),
                        ("embedding", pgvector.django.vector.VectorField(dimensions=128)),
                    ],
                ),
                migrations.RemoveIndex(model_name="faceimage", name="face_embedding_dlib_hnsw"),
                migrations.RemoveIndex(model_name="faceimage", name="face_embedding_sface_hnsw"),
                migrations.RemoveField(model_name="faceimage", name="embedding"),
            ],
        ),
    ]
