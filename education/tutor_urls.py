"""Tutor pages (course material, questions); included under /education/tutor/ in the education namespace."""

urlpatterns = []
