from django.urls import path

from runner import api

urlpatterns = [
    path("jobs/", api.JobListCreateApi.as_view(), name="api-jobs"),
    path("jobs/options/", api.JobOptionsApi.as_view(), name="api-job-options"),
    path("jobs/<int:job_id>/", api.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<int:job_id>/cancel/", api.JobCancelApi.as_view(), name="api-job-cancel"),
    path("jobs/<int:job_id>/retry/", api.JobRetryApi.as_view(), name="api-job-retry"),
    path("jobs/<int:job_id>/resume/", api.JobResumeApi.as_view(), name="api-job-resume"),
    path("jobs/<int:job_id>/log/", api.JobLogApi.as_view(), name="api-job-log"),
]
