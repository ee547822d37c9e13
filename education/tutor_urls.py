"""Tutor pages (course material, questions); included under /education/tutor/ in the education namespace."""

from django.urls import path

from education import tutor_views as views

urlpatterns = [
    path("", views.home, name="tutor_home"),
    path("courses/<int:course_id>/", views.course, name="tutor_course"),
    path("courses/<int:course_id>/ask/", views.course_ask, name="tutor_course_ask"),
    path("courses/<int:course_id>/material/", views.material_list, name="tutor_material_list"),
    path("courses/<int:course_id>/sessions/", views.course_sessions, name="tutor_course_sessions"),
    path("material/<int:material_id>/", views.material_detail, name="tutor_material_detail"),
    path("material/<int:material_id>/state/", views.material_state, name="tutor_material_state"),
    path("material/<int:material_id>/retry/", views.material_retry, name="tutor_material_retry"),
    path("material/<int:material_id>/delete/", views.material_delete, name="tutor_material_delete"),
    path("sessions/<int:session_id>/", views.session_detail, name="tutor_session"),
    path("sessions/<int:session_id>/ask/", views.session_ask, name="tutor_session_ask"),
    path("messages/<int:message_id>/reveal/", views.message_reveal, name="tutor_message_reveal"),
    path("messages/<int:message_id>/explain/", views.message_explain, name="tutor_message_explain"),
    path("messages/<int:message_id>/flag/", views.message_flag, name="tutor_message_flag"),
]
