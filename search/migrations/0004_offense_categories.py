from django.db import migrations

CATEGORIES = [
    "Homicide", "Attempted homicide", "Robbery", "Assault", "Sexual offence", "Child sexual exploitation",
    "Kidnapping", "Human trafficking", "Terrorism", "Drug trafficking", "Burglary", "Theft", "Fraud",
    "Arson", "Weapons offence", "Missing person", "Wanted person", "Other serious crime",
]


def add_categories(apps, schema_editor):
    OffenseCategory = apps.get_model("search", "OffenseCategory")
    for name in CATEGORIES:
        OffenseCategory.objects.get_or_create(name=name, defaults={"is_missing_person": name == "Missing person"})


class Migration(migrations.Migration):
    dependencies = [("search", "0003_offense_category")]
    operations = [migrations.RunPython(add_categories, migrations.RunPython.noop)]
