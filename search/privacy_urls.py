from django.urls import path

from search import privacy_views as views

app_name = "privacy"

urlpatterns = [
    path("request/", views.subject_request_new, name="request-new"),
    path("requests/", views.request_queue, name="request-queue"),
    path("requests/<str:reference>/", views.request_detail, name="request-detail"),
    path("requests/<str:reference>/search/", views.request_search, name="request-search"),
    path("requests/<str:reference>/complete/", views.request_complete, name="request-complete"),
    path("requests/<str:reference>/photo.jpg", views.request_photo, name="request-photo"),
    path("requests/<str:reference>/faces/<uuid:face_code>.jpg", views.request_match_face, name="request-face"),
    path("requests/<str:reference>/export.zip", views.request_export, name="request-export"),
]
