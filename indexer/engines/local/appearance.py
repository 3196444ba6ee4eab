"""Eyewear, facial hair and occlusion (``Eyeglasses``, ``Sunglasses``, ``Beard``, ``Mustache``,
``FaceOccluded``) for one face, measured on the regions the 468-point MediaPipe mesh gives.

No registry package ships a model for these attributes, so each one is a small set of image
measurements, each compared with the face's *own* skin (the mid-cheeks), and turned into a
probability by a logistic. Following the convention of ``analyzer.py``, every logistic is centred
on the midpoint between the two states it separates and its scale is a quarter of their distance;
the two states' typical values (class medians) were measured once on the public half of the CelebA
sample (``../shared/data/celeba_attributes``; our own sunglasses labels in
``bench/labels/celeba_sunglasses.txt``). Nothing else is learned: no weight vectors, cues of one
attribute are averaged with equal weight.

How the attributes relate (Rekognition's conventions):

* ``Sunglasses`` implies ``Eyeglasses``: Rekognition's ``Eyeglasses`` is "whether or not the face
  is wearing eye glasses" (API_Eyeglasses), which sunglasses are; the face-analysis illustration
  of its developer guide (faces.md, sample-detect-faces.png: a woman in sunglasses) lists both;
  and CelebA's ``Eyeglasses`` label counts sunglasses too. So P(Eyeglasses) is P(any eyewear).
* ``FaceOccluded`` follows Rekognition's definition (API_FaceOccluded): true when the eyes, nose or
  mouth are covered by masks, *dark* sunglasses, phones, hands or other objects, or are only
  partially in the picture; false for eyeglasses, lightly tinted sunglasses or strands of hair.
* Facial hair is weighed by P(male): P(beard) = P(hair-like chin | image) x P(male). Women rarely
  have beards, and the image cue alone fires on shadows and on hair falling over the chin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .answers import binary, logistic, sigmoid

# --- the face-aligned frame ------------------------------------------------------------------
#: Canonical crop: the eye centres are mapped (similarity transform: roll and scale removed) to
#: fixed points CANON_IOD pixels apart. 40 px between the eyes is about the resolution of a face
#: 100 px wide, still resolving frame rims and beard texture, and keeps the crop (120 x 140 px,
#: brows to chin) small enough for the whole measurement to cost a few milliseconds.
CANON_IOD = 40.0
CROP_W, CROP_H = 120, 140
CANON_EYE_LEFT = (40.0, 50.0)

# --- mesh regions (MediaPipe face-mesh indices; image-left first) ------------------------------
EYE_LEFT = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
EYE_RIGHT = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
#: Pixels (in the canonical crop) trimmed off the lens ring's edges, so that a frame's rim stays
#: out of the lens measurement (with the median's robustness, rims up to ~5% of the inter-ocular
#: distance thick). One pixel: the ring is only ~5-8 px wide at this scale.
LENS_RIM_PX = 1
#: Where a spectacle lens sits: the ring between the upper lid crease (MediaPipe "eyeUpper2")
#: and the top of the cheek ("eyeLower3"), minus the eye opening itself.
LENS_LEFT = (113, 225, 224, 223, 222, 221, 189, 245, 128, 121, 120, 119, 118, 117, 111, 143)
LENS_RIGHT = (342, 445, 444, 443, 442, 441, 413, 465, 357, 350, 349, 348, 347, 346, 340, 372)
#: Skin reference: the mid-cheeks, below any lens and above where beards grow.
CHEEK_LEFT = (100, 101, 50, 187, 205, 36, 142)
CHEEK_RIGHT = (329, 330, 280, 411, 425, 266, 371)
#: Forehead centre, above and between the brows: skin that a mask over the lower face (which
#: also hides the cheeks) leaves uncovered.
FOREHEAD = (108, 151, 337, 336, 9, 107)
BROW_LEFT = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
BROW_RIGHT = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
#: Upper lip: between the nose base and the lip line (where a mustache grows).
UPPER_LIP = (186, 92, 165, 167, 164, 393, 391, 322, 410, 409, 270, 269, 267, 0, 37, 39, 40, 185)
#: Chin below the lower lip, and each jaw side from the mouth corner down to the jawline
#: (slightly inside the face outline so that the neck and background stay out).
CHIN = (106, 182, 83, 18, 313, 406, 335, 418, 262, 396, 175, 171, 140)
JAW_LEFT = (212, 216, 192, 138, 135, 169, 170, 140, 106, 43, 57)
JAW_RIGHT = (432, 436, 416, 367, 364, 394, 395, 369, 335, 273, 287)
#: Nose bridge column: between the inner eye corners, from just above the nasion (168) down to
#: the upper nasal dorsum (195): a spectacle bridge crosses it as a horizontal bar.
BRIDGE_TOP, BRIDGE_BOTTOM, INNER_CORNERS = 168, 195, (133, 362)
#: The bridge window is warped on its own at 64 px between the eyes (finer than the main crop).
BRIDGE_IOD = 64.0
BRIDGE_HALF_WIDTH = 0.12  # of the inter-ocular distance: the width of the nose between the eyes
BRIDGE_TOP_MARGIN = 0.08  # of the inter-ocular distance above 168 (bridges sit a little higher)
#: A face half whose eye is foreshortened to less than half the other eye's width (the face is
#: turned by roughly 40 degrees or more) is not measured: its cheek, lens, brow and jaw regions
#: then lie largely on hair or background.
FAR_SIDE_RATIO = 0.5
#: Eye corners, nose tip, mouth corners and lip midpoints: if these leave the picture, the face
#: is "partially captured" in Rekognition's sense.
KEY_POINTS = (33, 133, 362, 263, 1, 61, 291, 0, 17)

# --- cue constants (centre, scale) ---------------------------------------------------------------
# Each centre is the midpoint between the medians of the two states on the public CelebA half
# (392 crops, largest face), each scale a quarter of their distance, rounded.
#: Eyewear: largest vertical step (L* per canonical pixel) of the bridge column's mean profile.
#: Medians: 4.6 with eyewear (CelebA Eyeglasses, n=37), 1.2 without (n=355).
BRIDGE_EDGE_MID, BRIDGE_EDGE_SCALE = 2.9, 0.84
#: Dark or tinted lenses given eyewear: Lab colour distance (Delta E) of the lens ring's median
#: from the cheeks' median. Medians among eyewear: 40.1 sunglasses (n=14), 15.1 clear (n=23).
LENS_DELTA_E_MID, LENS_DELTA_E_SCALE = 27.6, 6.2
#: Dark lenses hide the eyes, which Rekognition counts as occlusion; lightly tinted ones do not.
#: "Dark" is ISO 12312-1 filter category 3 or darker: at most 18% light transmittance. Seen
#: through such a lens, skin of typical lightness (L* 65) drops to L* 30, so the boundary is a
#: lens L* drop of 35 below the cheeks; the scale is a quarter of the distance between the middle
#: of category 2 (30% transmittance, drop 27) and of category 4 (5%, drop 51). See
#: ``lightness_drop_through``. (Measured on our labels the drop does not separate the tinted from
#: the dark sunglasses well, so this is a principled cut, not a calibrated one.)
SKIN_LIGHTNESS = 65.0
DARK_LENS_TRANSMITTANCE = 0.18


def lightness_drop_through(transmittance: float, lightness: float = SKIN_LIGHTNESS) -> float:
    """CIE L* lost when a surface of L* ``lightness`` is seen through a filter passing
    ``transmittance`` of the light (L* = 116 Y^(1/3) - 16, Y scaled by the transmittance)."""
    y = ((lightness + 16.0) / 116.0) ** 3 * transmittance
    return lightness - (116.0 * y ** (1.0 / 3.0) - 16.0)


LENS_DARK_MID = lightness_drop_through(DARK_LENS_TRANSMITTANCE)
LENS_DARK_SCALE = (lightness_drop_through(0.05) - lightness_drop_through(0.30)) / 4.0
#: Facial hair, per region, three cues against the cheeks (beard: chin + jaw + upper lip; mustache:
#: upper lip). Medians of bearded vs. clean-shaven men (CelebA No_Beard, men only: 101 vs 100;
#: Mustache: 36 vs 165):
#:   hair share = fraction of the region's pixels closer in Lab to the face's own eyebrow hair
#:   (darker half of the brow region) than to its cheek skin — beard 0.50 vs 0.26, mustache
#:   0.86 vs 0.31;
#:   texture = mean gradient magnitude over the cheeks' (+1 L*/px, the noise floor, so that flat
#:   synthetic skin does not divide by zero) — beard 0.98 vs 0.82, mustache 1.36 vs 1.02;
#:   chroma drop = cheek chroma minus region chroma (hair is less saturated than skin) —
#:   beard 5.0 vs 2.0, mustache 7.2 vs 3.3.
BEARD_HAIR_MID, BEARD_HAIR_SCALE = 0.38, 0.061
BEARD_TEXTURE_MID, BEARD_TEXTURE_SCALE = 0.90, 0.039
BEARD_CHROMA_MID, BEARD_CHROMA_SCALE = 3.5, 0.76
MUSTACHE_HAIR_MID, MUSTACHE_HAIR_SCALE = 0.59, 0.137
MUSTACHE_TEXTURE_MID, MUSTACHE_TEXTURE_SCALE = 1.19, 0.086
MUSTACHE_CHROMA_MID, MUSTACHE_CHROMA_SCALE = 5.2, 0.98
#: A mask or flat object over the lower face: its colour is far from the face's skin and it is
#: smooth. Colour: Delta E of the lower face (upper lip + lips + chin) from the forehead; on the
#: (unoccluded) CelebA faces its median is 15 and its 99th percentile 47 (hats and fringes of hair
#: on the forehead): midpoint 30 between "skin" (15) and "another material" (45), scale a quarter
#: of that gap. Texture: gradient energy over the cheeks' (as for hair): a flat cover is 0, skin
#: like the cheeks 1 (CelebA's 1st percentile is 0.59): midpoint 0.5, scale 0.25.
COVER_DELTA_E_MID, COVER_DELTA_E_SCALE = 30.0, 7.5
COVER_TEXTURE_MID, COVER_TEXTURE_SCALE = 0.5, 0.25
#: Partially captured: number of KEY_POINTS outside the image; midpoint between none and one,
#: scale a quarter of that step.
CUT_MID, CUT_SCALE = 0.5, 0.25


# --- geometry helpers ---------------------------------------------------------------------------
def eye_centres(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-left and image-right eye centres (midpoints of each eye's corners)."""
    return mesh[[33, 133], :2].mean(0), mesh[[362, 263], :2].mean(0)


def canonical_transform(mesh: np.ndarray, iod: float = CANON_IOD,
                        eye_left: tuple[float, float] = CANON_EYE_LEFT) -> np.ndarray:
    """2x3 similarity matrix taking the eye centres ``iod`` pixels apart, the image-left one to
    ``eye_left`` (roll and scale removed)."""
    src_l, src_r = eye_centres(mesh)
    dst_l = np.array(eye_left)
    dst_r = dst_l + (iod, 0.0)
    v, w = src_r - src_l, dst_r - dst_l
    scale = float(np.linalg.norm(w) / (np.linalg.norm(v) + 1e-9))
    angle = math.atan2(w[1], w[0]) - math.atan2(v[1], v[0])
    c, s = scale * math.cos(angle), scale * math.sin(angle)
    m = np.array([[c, -s, 0.0], [s, c, 0.0]])
    m[:, 2] = dst_l - m[:, :2] @ src_l
    return m


def canonical_crop(rgb: np.ndarray, mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face warped into the canonical frame, and the mesh's 2-D points in that frame."""
    import cv2

    m = canonical_transform(mesh)
    crop = cv2.warpAffine(rgb, m, (CROP_W, CROP_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, mesh[:, :2] @ m[:, :2].T + m[:, 2]


def region_mask(points: np.ndarray, indices, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the polygon through ``points[indices]``."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(indices)]).astype(np.int32)], 1)
    return mask.astype(bool)


def bridge_edge(rgb: np.ndarray, mesh: np.ndarray) -> float:
    """Largest |vertical step| of the nose-bridge column's mean L* profile (L* per pixel, at
    BRIDGE_IOD pixels between the eyes).

    A spectacle bridge is a horizontal bar across the nose between the eyes: averaged across the
    column it leaves a sharp step, where bare skin changes slowly. Only this small window is warped,
    at a finer scale than the rest, because a thin metal bridge is one or two pixels thick there.
    """
    import cv2

    m = canonical_transform(mesh, BRIDGE_IOD, (0.0, 0.0))
    pts = mesh[[BRIDGE_TOP, BRIDGE_BOTTOM, *INNER_CORNERS], :2] @ m[:, :2].T + m[:, 2]
    x_mid = float(pts[2:, 0].mean())
    half = BRIDGE_HALF_WIDTH * BRIDGE_IOD
    top = float(pts[0, 1]) - BRIDGE_TOP_MARGIN * BRIDGE_IOD
    height = int(round(float(pts[1, 1]) - top))
    width = int(round(2 * half)) + 1
    if height < 3 or width < 1:
        return 0.0
    pad = 2  # pixels around the window, so the derivative filter never sees the border
    m[:, 2] -= (x_mid - half - pad, top - pad)
    patch = cv2.warpAffine(rgb, m, (width + 2 * pad, height + 2 * pad), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    light = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32) * (100.0 / 255.0)
    grad_y = cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3, scale=1.0 / 8.0)[pad:-pad, pad:-pad]
    return float(np.abs(grad_y.mean(1)).max())


def visible_sides(mesh: np.ndarray) -> tuple[bool, bool]:
    """Whether the image-left and image-right halves of the face are seen well enough to measure.

    In a turned face the far half is foreshortened and its regions pick up hair and background;
    a half whose eye looks less than FAR_SIDE_RATIO as wide as the other eye is left out.
    """
    left = float(np.linalg.norm(mesh[33, :2] - mesh[133, :2]))
    right = float(np.linalg.norm(mesh[362, :2] - mesh[263, :2]))
    near = max(left, right, 1e-6)
    return left / near >= FAR_SIDE_RATIO, right / near >= FAR_SIDE_RATIO


def keypoints_outside(mesh: np.ndarray, width: int, height: int) -> int:
    """How many of the eye corners, nose tip and mouth points fall outside the image."""
    p = mesh[list(KEY_POINTS), :2]
    inside = (p[:, 0] >= 0) & (p[:, 0] < width) & (p[:, 1] >= 0) & (p[:, 1] < height)
    return int((~inside).sum())


# --- measurements ------------------------------------------------------------------------------
class _Face:
    """The canonical crop in L*a*b* (L* 0-100, a*, b* centred) with its gradients and regions.

    Statistics that several cues share (the cheeks' median colour, the hair colour, chroma) are
    computed once per face.
    """

    def __init__(self, rgb: np.ndarray, mesh: np.ndarray):
        import cv2

        crop, self.points = canonical_crop(rgb, mesh)
        lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
        lab *= np.array([100.0 / 255.0, 1.0, 1.0], np.float32)
        lab -= np.array([0.0, 128.0, 128.0], np.float32)
        self.lab = lab
        light = np.ascontiguousarray(lab[..., 0])
        grad_y = cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3, scale=1.0 / 8.0)
        grad_x = cv2.Sobel(light, cv2.CV_32F, 1, 0, ksize=3, scale=1.0 / 8.0)
        self.grad = cv2.magnitude(grad_x, grad_y)
        self.chroma = cv2.magnitude(np.ascontiguousarray(lab[..., 1]), np.ascontiguousarray(lab[..., 2]))
        shape = light.shape
        pts = self.points

        left, right = visible_sides(mesh)

        def sides(left_part, right_part) -> tuple:
            return tuple(q for q, seen in ((left_part, left), (right_part, right)) if seen)

        def poly(*parts) -> np.ndarray:
            return np.logical_or.reduce([np.zeros(shape, bool)] + [region_mask(pts, q, shape) for q in parts])

        lips = poly(LIPS)
        lips_wide = cv2.dilate(lips.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        self.cheeks = poly(*sides(CHEEK_LEFT, CHEEK_RIGHT))
        # The lens interior: eroded by LENS_RIM_PX so that a frame's rim, which runs along the
        # polygon's edge, is not mistaken for a tinted lens.
        lens = cv2.erode(poly(*sides(LENS_LEFT, LENS_RIGHT)).astype(np.uint8), np.ones((2 * LENS_RIM_PX + 1,) * 2, np.uint8))
        self.lens = lens.astype(bool) & ~poly(EYE_LEFT, EYE_RIGHT)
        self.brows = poly(*sides(BROW_LEFT, BROW_RIGHT))
        self.upper_lip = poly(UPPER_LIP) & ~lips_wide
        chin = poly(CHIN) & ~lips_wide
        self.beard_area = self.upper_lip | chin | (poly(*sides(JAW_LEFT, JAW_RIGHT)) & ~lips_wide)
        self.lower_face = self.upper_lip | lips | chin
        self.forehead = poly(FOREHEAD)
        self._skin: np.ndarray | None = None
        self._hair: np.ndarray | None = None
        self._cheek_grad: float | None = None

    def usable(self) -> bool:
        masks = (self.cheeks, self.lens, self.brows, self.upper_lip, self.beard_area, self.forehead)
        return all(int(m.sum()) >= 4 for m in masks)

    def median_lab(self, mask: np.ndarray) -> np.ndarray:
        return np.median(self.lab[mask], axis=0)

    @property
    def skin(self) -> np.ndarray:
        """The cheeks' median L*a*b*: this face's skin under this light."""
        if self._skin is None:
            self._skin = self.median_lab(self.cheeks)
        return self._skin

    @property
    def hair(self) -> np.ndarray:
        """Mean L*a*b* of the darker half of the eyebrows: this face's hair under this light.

        The eyebrows are the one patch of hair every face shows (dark, blond or grey alike); their
        darker half is taken because brow pixels mix with skin.
        """
        if self._hair is None:
            brow = self.lab[self.brows]
            self._hair = brow[brow[:, 0] <= np.median(brow[:, 0])].mean(0)
        return self._hair

    def delta_e(self, mask: np.ndarray) -> float:
        """Lab distance of a region's median colour from the cheeks' (CIE76 Delta E)."""
        return float(np.linalg.norm(self.median_lab(mask) - self.skin))

    def lightness_drop(self, mask: np.ndarray) -> float:
        return float(self.skin[0] - np.median(self.lab[..., 0][mask]))

    def texture_ratio(self, mask: np.ndarray) -> float:
        """Mean gradient magnitude of a region over the cheeks' (+1 L*/px noise floor)."""
        if self._cheek_grad is None:
            self._cheek_grad = float(self.grad[self.cheeks].mean())
        return float(self.grad[mask].mean() / (self._cheek_grad + 1.0))

    def cover_cues(self) -> tuple[float, float]:
        """(Delta E of the lower face's median colour from the forehead's, its texture ratio).

        Colour is compared with the forehead, not the cheeks, because a mask covers the cheeks
        too; texture is still compared with the cheeks (a fringe of hair makes the forehead
        textured), and a mask that also covers the cheeks still reads as smooth because of the
        ratio's +1 noise floor.
        """
        forehead = self.median_lab(self.forehead)
        delta_e = float(np.linalg.norm(self.median_lab(self.lower_face) - forehead))
        return delta_e, self.texture_ratio(self.lower_face)

    def chroma_drop(self, mask: np.ndarray) -> float:
        return float(np.median(self.chroma[self.cheeks]) - np.median(self.chroma[mask]))

    def hair_share(self, mask: np.ndarray) -> float:
        """Share of a region's pixels nearer (in Lab) to this face's hair than to its skin."""
        pix = self.lab[mask]
        to_hair = ((pix - self.hair) ** 2).sum(1)
        to_skin = ((pix - self.skin) ** 2).sum(1)
        return float(np.mean(to_hair < to_skin))


def _hair_probability(face: _Face, mask: np.ndarray, constants) -> float:
    """Equal-weight mean of the three hair cues' logits (share, texture, chroma drop)."""
    (h_mid, h_scale), (t_mid, t_scale), (c_mid, c_scale) = constants
    z = (
        (face.hair_share(mask) - h_mid) / h_scale
        + (face.texture_ratio(mask) - t_mid) / t_scale
        + (face.chroma_drop(mask) - c_mid) / c_scale
    ) / 3.0
    return sigmoid(z)


BEARD_CUES = ((BEARD_HAIR_MID, BEARD_HAIR_SCALE), (BEARD_TEXTURE_MID, BEARD_TEXTURE_SCALE),
              (BEARD_CHROMA_MID, BEARD_CHROMA_SCALE))
MUSTACHE_CUES = ((MUSTACHE_HAIR_MID, MUSTACHE_HAIR_SCALE), (MUSTACHE_TEXTURE_MID, MUSTACHE_TEXTURE_SCALE),
                 (MUSTACHE_CHROMA_MID, MUSTACHE_CHROMA_SCALE))


def probabilities(rgb: np.ndarray, mesh: np.ndarray, p_male: float | None) -> dict[str, float] | None:
    """The five attributes as probabilities (None when the mesh's regions are degenerate)."""
    face = _Face(rgb, mesh)
    if not face.usable():
        return None
    p_frame = logistic(bridge_edge(rgb, mesh), BRIDGE_EDGE_MID, BRIDGE_EDGE_SCALE)
    p_tinted = logistic(face.delta_e(face.lens), LENS_DELTA_E_MID, LENS_DELTA_E_SCALE)
    # Sunglasses are eyewear with dark or tinted lenses: the lens cue alone also fires on eye
    # make-up, shadowed or closed eyes, so it counts only together with a frame.
    p_sun = p_frame * p_tinted
    p_eyewear = max(p_frame, p_sun)
    p_dark_lens = p_sun * logistic(face.lightness_drop(face.lens), LENS_DARK_MID, LENS_DARK_SCALE)

    male = 1.0 if p_male is None else float(p_male)
    p_beard = _hair_probability(face, face.beard_area, BEARD_CUES) * male
    p_mustache = _hair_probability(face, face.upper_lip, MUSTACHE_CUES) * male

    cover_delta_e, cover_texture = face.cover_cues()
    # A cover is both far from skin in colour and smooth (either alone is a hat over the forehead,
    # a blurred photo, a beard or stage light).
    p_cover = logistic(cover_delta_e, COVER_DELTA_E_MID, COVER_DELTA_E_SCALE) * logistic(
        -cover_texture, -COVER_TEXTURE_MID, COVER_TEXTURE_SCALE)
    h, w = rgb.shape[:2]
    p_cut = logistic(keypoints_outside(mesh, w, h), CUT_MID, CUT_SCALE)
    return {
        "Eyeglasses": p_eyewear,
        "Sunglasses": p_sun,
        "Beard": p_beard,
        "Mustache": p_mustache,
        "FaceOccluded": max(p_dark_lens, p_cover, p_cut),
    }


def estimate(rgb: np.ndarray, mesh: np.ndarray, p_male: float | None) -> dict[str, Any]:
    """``rgb``: the HxWx3 uint8 image; ``mesh``: 468x3 MediaPipe points in its pixels;
    ``p_male``: the face's probability of being male (None when unknown: facial hair then rests
    on the image cues alone).

    Returns the FaceDetail entries ``Eyeglasses``, ``Sunglasses``, ``Beard``, ``Mustache``,
    ``FaceOccluded`` (each ``{"Value": bool, "Confidence": 50-100}``), or ``{}`` when the mesh
    gives no usable regions (a degenerate fit).
    """
    p = probabilities(rgb, mesh, p_male)
    if p is None:
        return {}
    return {name: binary(v) for name, v in p.items()}
