"""eSpeak NG through ctypes: the libespeak-ng and voice data that the espeakng-loader wheel ships."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from spinbot.errors import EngineUnavailable, PermanentError
from spinbot.languages import display_name

# espeak_AUDIO_OUTPUT, espeak_PARAMETER, espeak_POSITION_TYPE and flags from speak_lib.h.
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE, PARAM_WORDGAP = 1, 2, 3, 4, 7
POS_CHARACTER = 1
CHARS_UTF8 = 1
EE_OK = 0

SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# The library keeps global state (one voice, one callback): one synthesis at a time per process.
_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Espeak:
    lib: ctypes.CDLL
    sample_rate: int
    version: str


@cache
def load() -> Espeak:
    """Load and initialise libespeak-ng once per process; EngineUnavailable if it is not installed."""
    try:
        import espeakng_loader
    except ImportError as e:
        raise EngineUnavailable(
            "eSpeak NG is not installed", hint="pip install espeakng-loader (make up installs it)"
        ) from e
    try:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
    except OSError as e:
        raise EngineUnavailable(f"libespeak-ng could not be loaded: {e}") from e
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [SynthCallback]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    data = espeakng_loader.get_data_path().encode()
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, INITIALIZE_DONT_EXIT)
    if rate <= 0:
        raise EngineUnavailable(f"espeak_Initialize failed ({rate}) with data at {data.decode()}")
    version = (lib.espeak_Info(None) or b"?").decode()
    return Espeak(lib, rate, version)


def synthesize(
    text: str,
    *,
    voice: str,
    wpm: int,
    pitch: int = 50,
    should_stop: Callable[[], bool] = lambda: False,
) -> np.ndarray:
    """Speak `text` with the eSpeak voice name (e.g. 'en+f3'); int16 mono samples at load().sample_rate."""
    es = load()
    chunks: list[np.ndarray] = []

    def collect(wav: ctypes._Pointer, n: int, _events: int) -> int:
        if n > 0 and wav:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 1 if should_stop() else 0  # non-zero asks eSpeak to abort

    callback = SynthCallback(collect)  # kept alive for the duration of the call
    raw = text.encode("utf-8") + b"\0"
    with _LOCK:
        es.lib.espeak_SetSynthCallback(callback)
        if es.lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            language = voice.split("+")[0]
            raise PermanentError(f"eSpeak NG has no voice for {display_name(language)} ({voice!r})",
                                 hint="eSpeak NG speaks about 100 languages (`espeak-ng --voices` lists them); "
                                      "for another, configure a TTS server that speaks it (SPINBOT_TTS_URL)")
        es.lib.espeak_SetParameter(PARAM_RATE, int(wpm), 0)
        es.lib.espeak_SetParameter(PARAM_PITCH, int(pitch), 0)
        es.lib.espeak_SetParameter(PARAM_VOLUME, 100, 0)
        err = es.lib.espeak_Synth(raw, len(raw), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    if err != EE_OK and not should_stop():
        raise PermanentError(f"espeak_Synth failed with code {err}")
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
