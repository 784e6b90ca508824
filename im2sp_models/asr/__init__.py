"""ASR models: ``wav2vec2-ctc`` (transformers) and ``faster-whisper`` (CTranslate2), from local folders."""

from im2sp_models.asr.registry import RECOGNIZERS, SpeechRecognizer, asr_names, load_asr, register_asr

__all__ = ["RECOGNIZERS", "SpeechRecognizer", "asr_names", "load_asr", "register_asr"]
