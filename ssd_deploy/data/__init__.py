"""Datasets: the generated shapes dataset (and, later, VOC / COCO / CSV readers)."""
