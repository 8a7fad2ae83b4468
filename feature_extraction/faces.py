"""Face crops for data without the release's openface_face folder: OpenCV's Haar cascade, whose weights ship
inside the opencv-python(-headless) 4.x wheel (``cv2.data.haarcascades``; the 5.x wheels no longer carry
them, hence the pin). The largest face of each sampled frame is cropped square with a margin and resized;
frames without a face are dropped, a clip with none is a ClipError."""
import numpy as np

from feature_extraction.base import ClipError
from toolkit.errors import UserError

CASCADE = "haarcascade_frontalface_default.xml"


class HaarFaces:
    def __init__(self, size=224, margin=0.2, min_face=0.1):
        self.size, self.margin, self.min_face = size, margin, min_face
        self._cascade = None

    def __getstate__(self):  # the cascade is rebuilt in each worker process
        return {**self.__dict__, "_cascade": None}

    def detector(self):
        if self._cascade is None:
            import cv2

            path = getattr(getattr(cv2, "data", None), "haarcascades", "") + CASCADE
            cascade = cv2.CascadeClassifier(path) if hasattr(cv2, "CascadeClassifier") else None
            if cascade is None or cascade.empty():
                raise UserError(f"OpenCV's Haar cascade {CASCADE} is not in this OpenCV install ({cv2.__version__}); "
                                f"install the pinned opencv-python-headless 4.x of requirements.txt")
            self._cascade = cascade
        return self._cascade

    def box(self, frame):
        """(x, y, w, h) of the largest face in an RGB frame, or None."""
        import cv2

        gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        side = int(self.min_face * min(gray.shape))
        faces = self.detector().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        if len(faces) == 0:
            return None
        return max((tuple(int(v) for v in f) for f in faces), key=lambda f: f[2] * f[3])

    def crop(self, frame, box):
        import cv2

        x, y, w, h = box
        pad = int(self.margin * max(w, h))
        side = max(w, h) + 2 * pad
        cx, cy = x + w // 2, y + h // 2
        top, left = max(0, cy - side // 2), max(0, cx - side // 2)
        patch = frame[top:top + side, left:left + side]
        return cv2.resize(np.ascontiguousarray(patch), (self.size, self.size), interpolation=cv2.INTER_AREA)

    def __call__(self, frames, name=""):
        """RGB frames (T, H, W, 3) → face crops (T', size, size, 3) of the frames where a face is found."""
        crops = [self.crop(frame, box) for frame in frames if (box := self.box(frame)) is not None]
        if not crops:
            raise ClipError(f"no face found in {len(frames)} sampled frames")
        return np.stack(crops)
