from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("partnerships", "0020_trust_disputes_mail_reviews_planned"),
    ]

    operations = [
        migrations.AddField(
            model_name="programchange",
            name="reason",
            field=models.TextField(blank=True, default="", verbose_name="reason"),
        ),
    ]
