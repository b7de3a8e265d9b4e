from django.urls import path

from search import gallery_views, review_views, views

app_name = "search"

urlpatterns = [
    path("cases/<uuid:case_code>/probes/", views.probe_upload, name="probe-upload"),
    path("searches/<uuid:code>/", views.job_detail, name="job-detail"),
    path("searches/<uuid:code>/status.json", views.job_status, name="job-status"),
    path("searches/<uuid:code>/results/", views.job_results, name="job-results"),
    path("searches/<uuid:code>/retry-sensitive/", views.job_retry_sensitive, name="job-retry-sensitive"),
    path(
        "searches/<uuid:code>/faces/<int:face>/candidates/<int:rank>/",
        views.candidate_compare,
        name="candidate-compare",
    ),
    path(
        "searches/<uuid:code>/faces/<int:face>/candidates/<int:rank>/mark/", views.candidate_mark, name="candidate-mark"
    ),
    path("searches/<uuid:code>/faces/<int:face>/candidates/<int:rank>/decide/", views.lead_decide, name="lead-decide"),
    path("profiles/<uuid:code>/", views.profile_detail, name="profile-detail"),
    path("reviews/", review_views.review_queue, name="review-queue"),
    path("reviews/mine/", review_views.review_mine, name="review-mine"),
    path("galleries/", gallery_views.gallery_list, name="gallery-list"),
    path("galleries/enrol/", gallery_views.gallery_enrol, name="gallery-enrol"),
    path("images/probes/<uuid:code>.jpg", views.probe_image, name="probe-image"),
    path("images/searches/<uuid:code>/annotated.jpg", views.job_annotated_image, name="job-annotated-image"),
    path("images/searches/<uuid:code>/faces/<int:face>.jpg", views.probe_face_crop, name="probe-face-crop"),
    path("images/faces/<uuid:code>/crop.jpg", views.face_crop, name="face-crop"),
    path("images/faces/<uuid:code>/photo.jpg", views.face_photo, name="face-photo"),
]
