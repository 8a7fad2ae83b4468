"""openSMILE fed piece by piece, so its memory does not grow with the length of the audio.

``opensmile.Smile.process_signal`` writes the whole signal into openSMILE at once, and openSMILE keeps it and
the levels it derives for the whole run: about 0.5 MB per second of audio (4.6 GB for two hours). Here
openSMILE runs in a thread (its SMILEapi streaming mode) while this one writes the audio into a ring buffer
(``opensmile_stream_source.conf.inc``), a few seconds at a time:

* low-level descriptors (``lld``): every level is a ring buffer, so memory is flat in the length of the track
  (only the descriptors themselves, 100 rows a second, are kept); the rows are exactly ``process_signal``'s;
* functionals (``func``) summarise the whole input, so openSMILE must keep the levels they read, about 0.3 MB
  per second. A track is therefore summarised in pieces of ``piece_s`` seconds, and the functionals of a
  longer track are the mean of its pieces' functionals weighted by their lengths. A track no longer than one
  piece gets exactly ``process_signal``'s functionals; a longer one gets exact means, and approximate order
  statistics, slopes and rates (tests/feature_extraction/test_smile_stream.py states the tolerance).

Samples are turned into 16-bit integers as ``process_signal`` does (× 32768), clipped to the 16-bit range
first instead of wrapping around."""
import os
import threading
import time

import numpy as np

from feature_extraction.base import SAMPLE_RATE, ClipError

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "opensmile_stream_source.conf.inc")
LLD_FUNCTIONALS = os.path.join(HERE, "opensmile_lld_functionals.conf.inc")
BLOCK = 32000  # samples written at once: half of the source's 4 s ring buffer
ROWS_PER_BLOCK = 4096


class Rows:
    """Rows of one width collected into blocks (a Python list of 100 small arrays a second would take twice
    the memory of the rows themselves)."""

    def __init__(self):
        self.blocks, self.filled = [], 0

    def append(self, row):
        if not self.blocks or self.filled == len(self.blocks[-1]):
            self.blocks.append(np.empty((ROWS_PER_BLOCK, len(row)), np.float32))
            self.filled = 0
        self.blocks[-1][self.filled] = row
        self.filled += 1

    def array(self):
        if not self.blocks:
            return np.zeros((0, 0), np.float32)
        return np.concatenate(self.blocks[:-1] + [self.blocks[-1][:self.filled]])


def _config_options(level):
    """The options opensmile.Smile gives its configs, with the streaming source (and, for descriptors, ring
    buffers throughout)."""
    import opensmile

    shared = os.path.join(os.path.dirname(os.path.abspath(opensmile.__file__)), "core", "config", "shared")
    options = {"source": SOURCE, "sink": os.path.join(shared, "standard_external_data_output_single.conf.inc"),
               "sinkLevel": level, "bufferModeRbConf": os.path.join(shared, "BufferModeRb.conf.inc"),
               "frameModeFunctionalsConf": os.path.join(shared, "FrameModeFunctionals.conf.inc"),
               "sampleRate": SAMPLE_RATE, "nBits": 16}
    if level == "lld":
        options.update(bufferModeConf=os.path.join(shared, "BufferModeRbLag.conf.inc"),
                       frameModeFunctionalsConf=LLD_FUNCTIONALS)
    return options


def config_path(feature_set):
    """The openSMILE configuration file of a standard feature set (e.g. eGeMAPSv02)."""
    import opensmile

    root = os.path.join(os.path.dirname(os.path.abspath(opensmile.__file__)), "core", "config")
    return os.path.join(root, opensmile.FeatureSet[feature_set].value + ".conf")


class SmileRun:
    """One openSMILE run over audio written to it piece by piece: ``write`` float32 pieces, then ``close`` →
    (T, C) rows of ``level`` ("lld" or "func"). Use it as a context manager: an error stops the run."""

    def __init__(self, feature_set, level):
        from opensmile.core.lib import OpenSMILE

        self.rows, self.error, self.samples, self.closed = Rows(), None, 0, False
        self.smile = OpenSMILE()
        self.smile.initialize(config_path(feature_set), _config_options(level), loglevel=2)
        self.smile.external_sink_set_callback("extsink", self.rows.append)
        self.thread = threading.Thread(target=self._run, name="opensmile", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.smile.run()
        except Exception as exc:  # reported by write/close in the calling thread
            self.error = exc

    def write(self, samples):
        pcm = (np.clip(samples, -1.0, 32767 / 32768).astype(np.float32) * 32768).astype(np.int16)
        self.samples += len(pcm)
        for start in range(0, len(pcm), BLOCK):
            data = pcm[start:start + BLOCK].tobytes()
            while not self.smile.external_audio_source_write_data("extsource", data):
                if not self.thread.is_alive():
                    raise ClipError(f"openSMILE stopped ({self.error or 'no reason given'})")
                time.sleep(0.001)

    def close(self):
        """End of input: wait for openSMILE to finish and return its rows."""
        self.smile.external_audio_source_set_eoi("extsource")
        self.thread.join()
        self.closed = True
        self.smile.free()
        if self.error is not None:
            raise ClipError(f"openSMILE failed ({self.error})")
        return self.rows.array()

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if not self.closed:  # an error on the way: end the input (openSMILE finishes what it holds) and free the run
            self.closed = True
            try:
                self.smile.external_audio_source_set_eoi("extsource")
            finally:
                self.thread.join()
                self.smile.free()
        return False


class PiecewiseFunctionals:
    """Functionals of a track written piece by piece: one openSMILE run per ``piece_s`` seconds, combined as
    their mean weighted by length (see the module doc)."""

    def __init__(self, feature_set, piece_s):
        self.feature_set, self.size = feature_set, int(piece_s * SAMPLE_RATE)
        self.run, self.done = None, []  # done: (functionals (C,), samples) per finished piece

    def write(self, samples):
        while len(samples):
            if self.run is None:
                self.run = SmileRun(self.feature_set, "func")
            part, samples = samples[:self.size - self.run.samples], samples[self.size - self.run.samples:]
            self.run.write(part)
            if self.run.samples == self.size:
                self._finish()

    def _finish(self):
        run, self.run = self.run, None
        with run:
            rows = run.close()
        if len(rows):
            self.done.append((rows[0], run.samples))

    def close(self):
        """The functionals (C,) of everything written (None when openSMILE gave none: too little audio)."""
        if self.run is not None:
            self._finish()
        if len(self.done) <= 1:
            return self.done[0][0] if self.done else None
        values = np.stack([v for v, _ in self.done]).astype(np.float64)
        weights = np.array([n for _, n in self.done], np.float64)
        return (weights @ values / weights.sum()).astype(np.float32)

    def abort(self):
        if self.run is not None:
            self.run.__exit__(None, None, None)
            self.run = None
