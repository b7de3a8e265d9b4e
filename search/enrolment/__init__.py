"""Enrolment of gallery photos: the CPU work and quality gate (`analysis`, no database) and the writes
(`store`: galleries, profiles, faces, a batch, the galleries page's upload)."""

from search.enrolment.analysis import (
    AnalysedPhoto,
    EnrolmentSkipped,
    analyse_file,
    analyse_files,
    content_hash,
    enrolment_analyse,
    enrolment_faces,
    enrolment_quality_gate,
)
from search.enrolment.store import (
    EnrolmentItem,
    EnrolmentSummary,
    EnrolResult,
    GalleryRefused,
    UploadEnrolment,
    face_image_enrol,
    face_image_store,
    gallery_enrol_batch,
    gallery_get_or_create,
    gallery_photos_enrol,
    profile_get_or_create,
    profile_is_minor,
)

__all__ = [
    "AnalysedPhoto",
    "EnrolResult",
    "EnrolmentItem",
    "EnrolmentSkipped",
    "EnrolmentSummary",
    "GalleryRefused",
    "UploadEnrolment",
    "analyse_file",
    "analyse_files",
    "content_hash",
    "enrolment_analyse",
    "enrolment_faces",
    "enrolment_quality_gate",
    "face_image_enrol",
    "face_image_store",
    "gallery_enrol_batch",
    "gallery_get_or_create",
    "gallery_photos_enrol",
    "profile_get_or_create",
    "profile_is_minor",
]
