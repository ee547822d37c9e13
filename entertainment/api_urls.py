"""The story studio's JSON API, mounted under api/v1/stories/ in core/urls.py."""

from django.urls import path

from entertainment import rest

urlpatterns = [
    path("projects/", rest.ProjectList.as_view(), name="stories-api-projects"),
    path("projects/<int:pk>/stories/", rest.ProjectStories.as_view(), name="stories-api-project-stories"),
    path("stories/<int:pk>/", rest.StoryDetail.as_view(), name="stories-api-story"),
    path("stories/<int:pk>/generate/", rest.StoryGenerate.as_view(), name="stories-api-story-generate"),
    path("trees/<int:pk>/generate/", rest.TreeGenerate.as_view(), name="stories-api-tree-generate"),
    path("trees/<int:pk>/export/<str:fmt>/", rest.TreeExport.as_view(), name="stories-api-tree-export"),
    path("jobs/<int:pk>/", rest.JobDetail.as_view(), name="stories-api-job"),
    path("jobs/<int:pk>/cancel/", rest.JobCancel.as_view(), name="stories-api-job-cancel"),
    path("jobs/<int:pk>/accept/", rest.JobAccept.as_view(), name="stories-api-job-accept"),
]
