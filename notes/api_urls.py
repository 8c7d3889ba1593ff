from django.urls import path

from notes import api

urlpatterns = [
    path("logs/", api.LogListCreateApi.as_view(), name="api-logs"),
    path("logs/<int:pk>/", api.LogDetailApi.as_view(), name="api-log"),
    path("logs/by-date/<str:date>/", api.LogByDateApi.as_view(), name="api-log-by-date"),
    path("revisions/", api.RevisionListApi.as_view(), name="api-revisions"),
    path("revisions/<int:pk>/restore/", api.RevisionRestoreApi.as_view(), name="api-revision-restore"),
    path("notes/render/", api.RenderApi.as_view(), name="api-notes-render"),
    path("papers/", api.PaperListCreateApi.as_view(), name="api-papers"),
    path("papers/export.bib", api.ExportBibtexApi.as_view(), name="api-papers-bibtex"),
    path("papers/<int:pk>/", api.PaperDetailApi.as_view(), name="api-paper"),
    path("papers/<int:pk>/digest/", api.PaperDigestApi.as_view(), name="api-paper-digest"),
    path("digests/", api.DigestListApi.as_view(), name="api-digests"),
    path("digest-template/", api.DigestTemplateApi.as_view(), name="api-digest-template"),
    path("reading-lists/", api.ReadingListListCreateApi.as_view(), name="api-reading-lists"),
    path("reading-lists/<int:pk>/", api.ReadingListDetailApi.as_view(), name="api-reading-list"),
    path("reading-lists/<int:pk>/items/", api.ReadingListItemsApi.as_view(), name="api-reading-list-items"),
    path("reading-lists/<int:pk>/items/<int:item_id>/", api.ReadingListItemDetailApi.as_view(),
         name="api-reading-list-item"),
    path("reading-lists/<int:pk>/reorder/", api.ReadingListReorderApi.as_view(), name="api-reading-list-reorder"),
    path("tags/", api.TagListApi.as_view(), name="api-tags"),
    path("search/", api.SearchApi.as_view(), name="api-search"),
    path("import/markdown/", api.ImportMarkdownApi.as_view(), name="api-import-markdown"),
    path("import/bibtex/", api.ImportBibtexApi.as_view(), name="api-import-bibtex"),
    path("export/", api.ExportZipApi.as_view(), name="api-export"),
]
