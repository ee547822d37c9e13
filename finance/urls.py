from django.urls import path

from finance import company_views, dashboard_views, views

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
    path("companies/", company_views.companies, name="companies"),
    path("companies/new/", company_views.company_add, name="company_add"),
    path("companies/<int:company_id>/", company_views.company_edit, name="company_edit"),
    path("companies/<int:company_id>/redetect/", company_views.company_redetect, name="company_redetect"),
    path("companies/redetect/<int:run_id>/", company_views.redetect_run, name="redetect_run"),
    path("articles/<int:article_id>/", company_views.article, name="article"),
    path("prices/", company_views.prices, name="prices"),
    path("prices/<int:upload_id>/", company_views.price_upload, name="price_upload"),
    path("prices/<int:upload_id>/rejected.csv", company_views.price_upload_rejected_csv,
         name="price_upload_rejected_csv"),
    path("sectors/<path:sector>/", dashboard_views.sector, name="sector"),
]
