from django.urls import path

from search import (
    compare_views,
    gallery_views,
    lawful_urls,
    lineup_urls,
    preparation_views,
    review_views,
    usage_urls,
    video_views,
    views,
    watchlist_urls,
)

app_name = "search"

urlpatterns = [
    path("cases/<uuid:case_code>/probes/", views.probe_upload, name="probe-upload"),
    path("searches/<uuid:code>/", views.job_detail, name="job-detail"),
    path("searches/<uuid:code>/status.json", views.job_status, name="job-status"),
    path("searches/<uuid:code>/results/", views.job_results, name="job-results"),
    path("searches/<uuid:code>/retry-sensitive/", views.job_retry_sensitive, name="job-retry-sensitive"),
    path(
        "searches/<uuid:code>/faces/<int:face>/candidates/<int:rank>/",
        compare_views.candidate_compare,
        name="candidate-compare",
    ),
    path(
        "searches/<uuid:code>/faces/<int:face>/candidates/<int:rank>/mark/",
        compare_views.candidate_mark,
        name="candidate-mark",
    ),
    path(
        "searches/<uuid:code>/faces/<int:face>/candidates/<int:rank>/decide/",
        compare_views.lead_decide,
        name="lead-decide",
    ),
    # Probe preparation (search/preparation.py)
    path("probes/<uuid:code>/prepare/", preparation_views.probe_prepare, name="probe-prepare"),
    path("probes/<uuid:code>/prepare/status.json", preparation_views.probe_prepare_status, name="probe-prepare-status"),
    path("probes/<uuid:code>/prepare/edit/", preparation_views.probe_edit, name="probe-edit"),
    path("probes/<uuid:code>/prepare/search/", preparation_views.probe_prepared_search, name="probe-prepared-search"),
    path(
        "images/probes/<uuid:code>/preview/<int:face>.jpg",
        preparation_views.probe_preview_face,
        name="probe-preview-face",
    ),
    path("images/probes/<uuid:code>/original.jpg", preparation_views.probe_original_image, name="probe-original-image"),
    # Stills from recorded video (search/video.py)
    path("cases/<uuid:case_code>/videos/", video_views.video_upload, name="video-upload"),
    path("videos/<uuid:code>/", video_views.video_detail, name="video-detail"),
    path("videos/<uuid:code>/status.json", video_views.video_status, name="video-status"),
    path("videos/<uuid:code>/search/", video_views.video_search, name="video-search"),
    path("images/videos/<uuid:code>/stills/<int:number>.jpg", video_views.video_still_image, name="video-still-image"),
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

# Lawful use (issue 19): each feature keeps its own URL module.
urlpatterns += lawful_urls.urlpatterns + watchlist_urls.urlpatterns + lineup_urls.urlpatterns + usage_urls.urlpatterns
