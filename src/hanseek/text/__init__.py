"""Korean text: normalisation with offset maps, Kiwi morphology, content words, BM25 tokens."""

from hanseek.text.analyzer import KoreanAnalyzer, Morpheme, default_analyzer
from hanseek.text.normalize import normalize, normalize_with_map

__all__ = ["KoreanAnalyzer", "Morpheme", "default_analyzer", "normalize", "normalize_with_map"]
