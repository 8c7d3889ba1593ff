from django.urls import path

from runner import views

urlpatterns = [
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/new/", views.job_new, name="job-new"),
    path("jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<int:job_id>/retry/", views.job_again, {"action": "retry"}, name="job-retry"),
    path("jobs/<int:job_id>/resume/", views.job_again, {"action": "resume"}, name="job-resume"),
    path("stream/runs/<int:run_id>/", views.run_stream, name="run-stream"),
    path("stream/jobs/<int:job_id>/", views.job_stream, name="job-stream"),
]
