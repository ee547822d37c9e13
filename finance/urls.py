from django.urls import path

from finance import dashboard_views, views

app_name = "finance"
urlpatterns = [
    path("", views.index, name="index"),
    path("dashboard/", dashboard_views.dashboard, name="dashboard"),
    path("ticker/<str:symbol>/", dashboard_views.ticker, name="ticker"),
    path("upload/", views.upload, name="upload"),
    path("feeds/", views.feeds, name="feeds"),
    path("watchlists/", views.watchlists, name="watchlists"),
    path("reports/", views.reports, name="reports"),
    path("reports/<int:report_id>/", views.report, name="report"),
    path("reports/schedules/<int:schedule_id>/delete/", views.report_schedule_delete, name="report_schedule_delete"),
    path("watchlists/<int:watchlist_id>/", views.watchlist, name="watchlist"),
    path("watchlists/<int:watchlist_id>/delete/", views.watchlist_delete, name="watchlist_delete"),
    path("feeds/<int:source_id>/poll/", views.feed_poll_now, name="feed_poll"),
    path("upload/confirm/", views.upload_confirm, name="upload_confirm"),
    path("runs/<int:run_id>/", views.ingest_run, name="ingest_run"),
    path("runs/<int:run_id>/problems.csv", views.ingest_run_problems_csv, name="ingest_run_problems_csv"),
]
