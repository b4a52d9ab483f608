import django.db.models.deletion
from django.db import migrations, models

import sms_service.validators


class Migration(migrations.Migration):

    dependencies = [
        ("sms_service", "0003_phone_users"),
    ]

    operations = [
        migrations.RenameModel(old_name="TestNumber", new_name="FixedCodeNumber"),
        migrations.AlterField(
            model_name="fixedcodenumber",
            name="app",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="fixed_code_numbers",
                to="sms_service.app",
                verbose_name="app",
            ),
        ),
        migrations.AlterField(
            model_name="fixedcodenumber",
            name="code",
            field=models.CharField(
                max_length=12,
                validators=[sms_service.validators.validate_fixed_code],
                verbose_name="fixed code",
            ),
        ),
    ]
