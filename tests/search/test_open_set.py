"""The open-set maths (search/open_set.py) and the labelled data it starts from, on real distances."""

import json
import math

import numpy as np
from django.conf import settings
from django.test import SimpleTestCase

from scripts.labelled_faces import labelled_faces, pair_distances
from search.calibration import LABELLED_PAIRS_FILE, labelled_impostors
from search.faces import YUNET_SFACE
from search.open_set import LIKELY, LOW_QUALITY, NONE, TailFit, face_decision, tail_fit, threshold_for


def _threshold(fit, faces, *, mate_bound=0.637, expected_false=0.01):
    return threshold_for(
        fit,
        engine=YUNET_SFACE,
        gallery_faces=faces,
        expected_false=expected_false,
        mate_bound=mate_bound,
        labelled_pairs=fit.pairs,
        gallery_pairs=0,
    )


class TailFitTests(SimpleTestCase):
    def test_on_a_large_normal_sample_the_fit_agrees_with_the_rate_the_sample_resolves(self):
        rng = np.random.default_rng(7)
        sample = rng.normal(0.9, 0.1, 400_000)
        fit = tail_fit(sample)
        for distance in (0.62, 0.58, 0.55):  # empirical rates 2.6e-3 … 2.3e-4: 1,000 … 90 pairs under
            empirical = float((sample <= distance).mean())
            # The exponential tail is heavier than the normal's: never below the truth, within 10×.
            self.assertGreaterEqual(fit.fmr(distance), empirical * 0.9, distance)
            self.assertLess(fit.fmr(distance), empirical * 10, distance)
        self.assertEqual(fit.shape, 0.0)  # a normal's lower tail is light: the shape is held at 0

    def test_distance_at_inverts_fmr(self):
        fit = tail_fit(labelled_impostors(YUNET_SFACE))
        for rate in (1e-3, 1e-4, 1e-6):
            self.assertAlmostEqual(fit.fmr(fit.distance_at(rate)), rate, delta=rate * 1e-6)

    def test_a_fit_survives_its_json_round_trip(self):
        fit = tail_fit(labelled_impostors(YUNET_SFACE))
        again = TailFit.from_json(json.loads(json.dumps(fit.as_json())))
        self.assertAlmostEqual(again.fmr(0.5), fit.fmr(0.5), places=9)

    def test_the_fit_is_checked_where_the_pairs_resolve_the_rate(self):
        fit = tail_fit(labelled_impostors(YUNET_SFACE))
        check = fit.check()
        self.assertEqual(check["empirical"], 10 / fit.pairs)
        # The fit at the 10th-lowest pair is within a factor 2 of the 10 pairs actually there.
        self.assertLess(abs(math.log(check["fitted"] / check["empirical"])), math.log(2))

    def test_too_few_distances_are_refused(self):
        with self.assertRaisesMessage(ValueError, "tail fit needs more"):
            tail_fit([0.8] * 15)


class ThresholdTests(SimpleTestCase):
    fit = tail_fit(labelled_impostors(YUNET_SFACE))

    def test_the_expected_number_of_unrelated_faces_stays_under_the_setting(self):
        previous = 1.0
        for faces in (10, 62, 1_000, 100_000):
            threshold = _threshold(self.fit, faces)
            self.assertLessEqual(threshold.expected_false, 0.01 * 1.0001)
            self.assertAlmostEqual(threshold.expected_false, faces * threshold.fmr)
            self.assertLess(threshold.distance, previous)  # a larger gallery, a stricter threshold
            previous = threshold.distance

    def test_a_tiny_gallery_is_capped_at_the_mate_bound(self):
        threshold = _threshold(self.fit, 1)
        self.assertEqual((threshold.distance, threshold.capped_by_mate_bound), (0.637, True))

    def test_no_labelled_impostor_falls_under_the_threshold_of_a_gallery_of_the_labelled_faces(self):
        threshold = _threshold(self.fit, 70)
        self.assertLess(threshold.distance, min(labelled_impostors(YUNET_SFACE)))
        # None of the 2,265 pairs is that close: the pairs alone bound the rate at 3 / 2,265.
        self.assertAlmostEqual(threshold.fmr_rule_of_three, 3 / self.fit.pairs)
        self.assertLess(threshold.fmr, threshold.fmr_rule_of_three)


class FaceDecisionTests(SimpleTestCase):
    def test_a_face_below_the_quality_floors_is_never_likely(self):
        self.assertEqual(face_decision(usable=False, compared=[(0.05, 0.5)]), LOW_QUALITY)

    def test_likely_only_under_the_threshold_of_the_engine_that_found_it(self):
        self.assertEqual(face_decision(usable=True, compared=[(0.51, 0.5), (0.49, 0.5)]), LIKELY)
        self.assertEqual(face_decision(usable=True, compared=[(0.51, 0.5)]), NONE)
        self.assertEqual(face_decision(usable=True, compared=[]), NONE)


class LabelledPairsDataTests(SimpleTestCase):
    """search/data/labelled_pairs.json is what `make calibration-data` computes from the shared photos."""

    def test_the_shipped_sface_distances_are_those_of_the_shared_photos(self):
        shipped = json.loads(LABELLED_PAIRS_FILE.read_text())[YUNET_SFACE]
        faces = labelled_faces(YUNET_SFACE)
        impostors, mates = pair_distances(YUNET_SFACE, faces)
        self.assertEqual((shipped["faces"], shipped["people"]), (len(faces), len({f.identity for f in faces})))
        self.assertEqual((len(shipped["impostors"]), len(shipped["mates"])), (len(impostors), len(mates)))
        np.testing.assert_allclose(shipped["impostors"], sorted(impostors), atol=2e-3)
        np.testing.assert_allclose(shipped["mates"], sorted(mates), atol=2e-3)
        self.assertGreaterEqual(shipped["faces"], 70)
        self.assertTrue(settings.FACES_DIR.is_dir())
