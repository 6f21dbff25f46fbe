"""A tiny numpy canvas for ``rgb_array`` frames, so rendering needs no display library."""

from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]


class Canvas:
    """An RGB image ``[height, width, 3]`` with a few filled shapes, coordinates in pixels (x right, y down)."""

    def __init__(self, height: int, width: int, background: Color = (255, 255, 255)):
        self.pixels = np.empty((height, width, 3), dtype=np.uint8)
        self.pixels[:] = background
        rows, cols = np.mgrid[0:height, 0:width]
        self._x = cols + 0.5
        self._y = rows + 0.5

    def rectangle(self, left: float, top: float, right: float, bottom: float, color: Color) -> None:
        """Fill the axis-aligned rectangle with corners (left, top) and (right, bottom)."""
        inside = (self._x >= left) & (self._x <= right) & (self._y >= top) & (self._y <= bottom)
        self.pixels[inside] = color

    def circle(self, center_x: float, center_y: float, radius: float, color: Color) -> None:
        """Fill the disc of ``radius`` around (center_x, center_y)."""
        inside = (self._x - center_x) ** 2 + (self._y - center_y) ** 2 <= radius**2
        self.pixels[inside] = color

    def line(self, x0: float, y0: float, x1: float, y1: float, width: float, color: Color) -> None:
        """Fill the segment from (x0, y0) to (x1, y1), ``width`` pixels thick."""
        dx, dy = x1 - x0, y1 - y0
        length_squared = max(dx * dx + dy * dy, 1e-12)
        along = np.clip(((self._x - x0) * dx + (self._y - y0) * dy) / length_squared, 0.0, 1.0)
        distance_squared = (self._x - (x0 + along * dx)) ** 2 + (self._y - (y0 + along * dy)) ** 2
        self.pixels[distance_squared <= (width / 2) ** 2] = color
