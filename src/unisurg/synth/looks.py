"""Appearance of each synthetic source: anatomical region, tissue tones, optics, nuisance rates.

UniSurg-15M mixes 50 sources over 13 regions; the built-in corpus mimics that with a
handful of distinct looks. Pretraining sources and benchmark mini-datasets both draw from
here, so a benchmark's videos look like the pretraining source of the same region.
"""

from __future__ import annotations

from dataclasses import dataclass

from .scene import Look

LOOKS: dict[str, Look] = {
    "lap_chole": Look(
        "lap_chole",
        "gallbladder",
        ((165, 55, 55), (215, 115, 95)),
        texture_cells=10,
        vignette=0.6,
        pan=0.15,
        shake=1.5,
        smoke_per_min=5,
        speculars=7,
        fluid=0.5,
    ),
    "lap_gyn": Look(
        "lap_gyn",
        "uterus",
        ((190, 95, 105), (235, 160, 160)),
        texture_cells=8,
        vignette=0.5,
        pan=0.12,
        shake=1.0,
        smoke_per_min=4,
        speculars=5,
        fluid=0.4,
    ),
    "lap_bypass": Look(
        "lap_bypass",
        "stomach",
        ((200, 120, 90), (240, 180, 140)),
        texture_cells=14,
        vignette=0.55,
        pan=0.18,
        shake=2.0,
        smoke_per_min=3,
        speculars=6,
        fluid=0.3,
    ),
    "lap_liver": Look(
        "lap_liver",
        "liver",
        ((110, 35, 40), (170, 70, 60)),
        texture_cells=9,
        vignette=0.6,
        pan=0.14,
        shake=1.2,
        smoke_per_min=6,
        speculars=8,
        fluid=0.6,
    ),
    "neuro_endo": Look(
        "neuro_endo",
        "brain",
        ((200, 150, 120), (245, 205, 180)),
        texture_cells=16,
        vignette=0.8,
        pan=0.1,
        shake=2.5,
        smoke_per_min=1,
        speculars=9,
        fluid=0.6,
        circular_fov=True,
    ),
    "neuro_micro": Look(
        "neuro_micro",
        "brain",
        ((225, 170, 150), (250, 225, 210)),
        texture_cells=20,
        vignette=0.3,
        pan=0.06,
        shake=0.5,
        smoke_per_min=0.5,
        speculars=4,
        fluid=0.3,
    ),
    "ophtho_micro": Look(
        "ophtho_micro",
        "eye",
        ((140, 60, 30), (235, 150, 60)),
        texture_cells=6,
        vignette=0.7,
        pan=0.04,
        shake=0.4,
        smoke_per_min=0,
        speculars=3,
        fluid=0.0,
        circular_fov=True,
    ),
    "colonoscopy": Look(
        "colonoscopy",
        "colon",
        ((205, 110, 95), (245, 175, 150)),
        texture_cells=12,
        vignette=0.9,
        pan=0.2,
        shake=2.0,
        smoke_per_min=0,
        speculars=10,
        fluid=0.3,
    ),
    "robot_prostate": Look(
        "robot_prostate",
        "prostate",
        ((175, 85, 85), (225, 145, 130)),
        texture_cells=11,
        vignette=0.45,
        pan=0.08,
        shake=0.6,
        smoke_per_min=4,
        speculars=6,
        fluid=0.5,
    ),
    "open_ego": Look(
        "open_ego",
        "skin",
        ((200, 150, 130), (240, 200, 180)),
        texture_cells=7,
        vignette=0.2,
        pan=0.25,
        shake=3.0,
        smoke_per_min=1,
        speculars=2,
        fluid=0.3,
    ),
    "bench_skill": Look(
        "bench_skill",
        "bench-top",
        ((210, 180, 160), (235, 215, 200)),
        texture_cells=5,
        vessels=2,
        vignette=0.25,
        pan=0.03,
        shake=0.3,
        smoke_per_min=0,
        speculars=2,
        fluid=0.0,
    ),
}


@dataclass(frozen=True)
class PretrainSource:
    """An unlabelled pretraining source of the built-in corpus (cf. the 50 sources of UniSurg-15M)."""

    name: str
    look: str
    procedure: str
    tools: tuple[str, ...]
    targets: tuple[str, ...]


PRETRAIN_SOURCES: tuple[PretrainSource, ...] = (
    PretrainSource(
        "hospital_a_lapchole",
        "lap_chole",
        "cholecystectomy",
        ("grasper", "hook", "clipper", "scissors", "irrigator", "bipolar"),
        ("gallbladder", "cystic_duct", "cystic_artery", "liver"),
    ),
    PretrainSource(
        "hospital_b_neuroendo",
        "neuro_endo",
        "pituitary surgery",
        ("curette", "drill", "suction", "forceps"),
        ("sella", "septum", "tumour"),
    ),
    PretrainSource(
        "hospital_c_neuromicro",
        "neuro_micro",
        "craniotomy",
        ("suction", "bipolar", "forceps", "scissors"),
        ("cortex", "vessel", "tumour"),
    ),
    PretrainSource(
        "eye_center_cataract",
        "ophtho_micro",
        "cataract surgery",
        ("phaco", "forceps", "knife", "irrigator"),
        ("lens", "capsule", "cornea"),
    ),
    PretrainSource(
        "gi_unit_colonoscopy", "colonoscopy", "colonoscopy", ("snare", "forceps", "irrigator"), ("polyp", "mucosa")
    ),
    PretrainSource(
        "robotic_prostatectomy",
        "robot_prostate",
        "radical prostatectomy",
        ("needle_driver", "bipolar", "scissors", "grasper"),
        ("prostate", "bladder_neck", "urethra"),
    ),
    PretrainSource(
        "gyn_laparoscopy",
        "lap_gyn",
        "hysterectomy",
        ("grasper", "bipolar", "scissors", "suction"),
        ("uterus", "ligament", "vessel"),
    ),
    PretrainSource(
        "skills_lab_benchtop", "bench_skill", "suturing practice", ("needle_driver", "forceps"), ("pad", "incision")
    ),
)
