"""Pages that list calibrations do not load the fitted model (with a kernel part, every graded essay's row)."""

import numpy as np
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from education.models import Calibration
from education.services.calibration import ridge_select


def _calibration(assignment) -> Calibration:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(60, 3))
    model = ridge_select(x, np.clip(np.round(3 - 1.2 * x[:, 0] ** 2), 0, 3), embed_dims=0, lo=0, hi=3)
    assert "kernel" in model
    return Calibration.objects.create(assignment=assignment, state=Calibration.State.DONE, n_graded=60, qwk=0.7,
                                      ridge=model)


def test_the_change_page_summarises_the_kernel_model(admin_client, assignment):
    calibration = _calibration(assignment)
    response = admin_client.get(reverse("admin:education_calibration_change", args=[calibration.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "ridge: 3 columns (embedding, text features)" in body  # fitted before the middle layer was stored
    assert "kernel ridge averaged in: 60 graded rows" in body
    assert "dual" not in body  # the stored model itself is not on the page
    Calibration.objects.filter(pk=calibration.pk).update(ridge={**calibration.ridge, "middle": True})
    body = admin_client.get(reverse("admin:education_calibration_change", args=[calibration.pk])).content.decode()
    assert "ridge: 3 columns (embedding, middle layer, text features)" in body
    Calibration.objects.filter(pk=calibration.pk).update(ridge={**calibration.ridge, "middle": True, "lm": 7})
    body = admin_client.get(reverse("admin:education_calibration_change", args=[calibration.pk])).content.decode()
    assert "ridge: 3 columns (embedding, middle layer, language model v7&#x27;s middle layer, text features)" in body


def test_the_list_does_not_read_the_fitted_models(admin_client, assignment):
    _calibration(assignment)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse("admin:education_calibration_changelist"))
    assert response.status_code == 200 and "Phones in school" in response.content.decode()
    listed = [q["sql"] for q in queries.captured_queries if 'FROM "education_calibration"' in q["sql"]
              and "COUNT(" not in q["sql"]]
    assert listed and all('"education_calibration"."ridge"' not in sql for sql in listed)


def test_the_teachers_calibration_panel_does_not_read_the_fitted_model(assignment):
    from education.selectors.grading import calibration_panel

    _calibration(assignment)
    with CaptureQueriesContext(connection) as queries:
        panel = calibration_panel(assignment=assignment)
    assert panel["current"].n_graded == 60
    calibration_reads = [q["sql"] for q in queries.captured_queries if 'FROM "education_calibration"' in q["sql"]]
    assert calibration_reads and all('"education_calibration"."ridge"' not in sql for sql in calibration_reads)
