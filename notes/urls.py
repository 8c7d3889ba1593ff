from django.urls import path

from notes import views

urlpatterns = [
    path("today/", views.today, name="today"),
    path("logs/", views.log_timeline, name="log-timeline"),
    path("logs/notes/new/", views.note_new, name="note-new"),
    path("logs/notes/<int:pk>/", views.note_detail, name="note-detail"),
    path("logs/<str:date>/", views.log_detail, name="log-detail"),
    path("revisions/<str:kind>/<int:pk>/", views.revisions, name="revisions"),
    path("revisions/<int:pk>/restore/", views.revision_restore, name="revision-restore"),
    path("papers/", views.paper_list, name="paper-list"),
    path("papers/template/", views.digest_template_edit, name="digest-template-edit"),
    path("papers/<int:pk>/", views.paper_detail, name="paper-detail"),
    path("papers/<int:pk>/edit/", views.paper_edit, name="paper-edit"),
    path("reading-lists/", views.reading_list_index, name="reading-list-index"),
    path("reading-lists/<int:pk>/", views.reading_list_detail, name="reading-list-detail"),
    path("search/", views.search_page, name="search"),
    path("import/", views.import_page, name="notes-import"),
    path("export/", views.export_zip, name="notes-export"),
    path("runs/<int:pk>/add-to-today/", views.run_add_to_today, name="run-add-to-today"),
]
