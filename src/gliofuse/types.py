"""Named units and identifiers, so signatures say which unit they expect."""

from __future__ import annotations

from typing import NewType

Mpp = NewType("Mpp", float)  # microns per pixel
Microns = NewType("Microns", float)
Level0Px = NewType("Level0Px", int)  # pixels at pyramid level 0
Days = NewType("Days", float)
PatientId = NewType("PatientId", str)  # TCGA patient barcode, 12 characters: TCGA-XX-XXXX
SlideId = NewType("SlideId", str)  # slide file name without extension

TASKS: tuple[str, ...] = ("survival", "grade", "diagnosis")
