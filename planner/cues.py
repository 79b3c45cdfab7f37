"""The words the rules read a goal by: read-aloud verbs and media nouns in several languages, greetings,
capability and job-status questions, follow-up cues, durations, voices, styles, languages, quotes.

planner.intent's `read_rules` combines them into an Intent; they are kept here so each list can grow
without the reading logic around it changing.
"""

from __future__ import annotations

import re


def words(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(" + "|".join(alternatives) + r")(?!\w)", re.I)


SPEECH = words(
    r"say|says|saying|said|read|reads|read (?:it |this |that )?(?:aloud|out)|recite|speak|speaks|pronounce|"
    r"narrate|voice[- ]?over|text[- ]to[- ]speech|tts|aloud|out loud|audio|speech|spoken|voice (?:message|note)",
    r"lis|lire|dis|dire|prononce|à voix haute|a voix haute|à haute voix",  # fr
    r"lies|vorlesen|lies vor|sag|sage|sprich|laut",  # de
    r"lee|leer|di|decir|en voz alta|pronuncia",  # es
    r"leggi|leggere|dì|ad alta voce",  # it
    r"leia|ler|diga|em voz alta",  # pt
    r"прочитай|прочти|скажи|вслух",  # ru
    r"اقرأ|إقرأ|اقرا|قل|بصوت عال\w*|بصوت مرتفع",  # ar
    r"朗读|读出|念|说|読んで|言って|音読",  # zh, ja
)
VIDEO = words(
    r"video|videos|clip|movie|film|talking[- ]head|avatar|presenter|explainer|animate|animated|animation|lip[- ]?sync",
    r"vidéo|vídeo|видео|فيديو|视频|動画",
)
IMAGE = words(
    r"image|picture|poster|drawing|illustration|painting|sketch|logo|icon|wallpaper|banner|thumbnail|"
    r"title card|cover art|draw|paint|illustrate",
    r"dessine|dessin|affiche|zeichne|bild|dibuja|imagen|disegna|immagine|desenhe|imagem|нарисуй|ارسم|画",
)
PORTRAIT_WORDS = words(r"portrait|face|headshot|selfie|person|presenter")
UPSCALE = words(r"upscale|upscaled|upscaling|enhance|sharpen|higher resolution|hi-?res|super[- ]resolution|[24] ?x")
SCRIPT = words(r"script|screenplay|narration text|write (?:me )?(?:a|the) (?:text|story|script)")
SUBTITLES = words(r"subtitles?|captions?|captioned")
NO_SUBTITLES = words(r"(?:no|without) (?:subtitles|captions)")
CREATE = words(
    r"make|create|generate|produce|render|build|give me|turn|convert|record|do a|need a|want a",
    r"fais|crée|erstelle|mach|crea|haz|faça|сделай|اصنع|做|作って",
)
GREETING = re.compile(
    r"^\s*(hi|hello|hey|hallo|bonjour|salut|hola|ciao|olá|привет|مرحبا|你好|good (morning|afternoon|evening)|"
    r"thanks|thank you|merci|danke|gracias|cheers|bye|goodbye|yo)\b[\s!.,?]*(there|spinbot|bot|a lot|so much)?"
    r"[\s!.,?]*$",
    re.I,
)
CAPABILITIES = re.compile(
    r"\b(what can (you|spinbot|it) do|what are you able|what do you (do|offer|support)|capabilit|"
    r"which (services|tools|models)|what (services|tools)|^help\b|list (the )?services)",
    re.I,
)
JOB_STATUS = re.compile(
    r"\b(status|progress|how('s| is) (it|my|the) (going|job|video)|is it (done|ready|finished)|"
    r"are you done|how long (will|does) it|when will it be (done|ready)|eta)\b",
    re.I,
)
QUESTION = re.compile(
    r"(\?\s*$|^\s*(what|why|how|when|where|who|which|is|are|can|could|does|do|explain|describe|tell me|"
    r"qu'est|pourquoi|comment|warum|wie|was|por qué|cómo|qué)\b)",
    re.I,
)
FOLLOW_UP = re.compile(
    r"\b(instead|make it|change|switch|use a|now with|again|longer|shorter|faster|slower|same but|redo|"
    r"louder|quicker|but with)\b",
    re.I,
)
#: "the same video, but ...", "that clip again with ...": the medium named is the last plan's, not a new one
SAME_MEDIUM = re.compile(
    r"\b(same|that|this) (video|clip|one|thing|audio|recording|speech|voice-?over|picture|image)\b", re.I
)

# ---- values -------------------------------------------------------------------------------------

NUMBER_WORDS = {
    "five": 5, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45,
    "fifty": 50, "sixty": 60, "ninety": 90, "one": 1, "two": 2, "three": 3, "four": 4, "half a": 0.5, "a": 1,
}  # fmt: skip
DURATION = re.compile(
    r"(?<!\w)(\d+(?:\.\d+)?|" + "|".join(sorted(map(re.escape, NUMBER_WORDS), key=len, reverse=True)) + r")"
    r"[\s-]*(seconds?|secs?|s|minutes?|mins?|m|secondes?|sekunden|segundos?|secondi)(?!\w)",
    re.I,
)
VOICE = [
    ("female", re.compile(r"\b(female|woman'?s?|women|girl'?s?|feminine|her voice|she|femme|féminine|weiblich|"
                          r"frau|mujer|femenina|donna|mulher)\b", re.I)),
    ("male", re.compile(r"\b(male|man'?s?|men|boy'?s?|masculine|his voice|he|homme|masculin|männlich|mann|"
                        r"hombre|masculina|uomo|homem)\b", re.I)),
]
STYLES = ("scientific", "funny", "humorous", "formal", "casual", "dramatic", "friendly", "educational",
           "informative", "serious", "playful", "poetic", "enthusiastic", "calm")  # fmt: skip
LANGUAGE_NAMES = {"english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
                   "portuguese": "pt", "dutch": "nl", "russian": "ru", "arabic": "ar", "chinese": "zh",
                   "japanese": "ja", "polish": "pl", "turkish": "tr"}  # fmt: skip
#: The cue words of a language name it when the words to speak do not (a French verb, Latin letters).
CUE_LANGUAGE = [
    ("fr", re.compile(r"(?<!\w)(lis|lire|dis|prononce|à voix haute|a voix haute|à haute voix|ce texte)(?!\w)", re.I)),
    ("de", re.compile(r"(?<!\w)(lies|vorlesen|sprich|diesen text)(?!\w)", re.I)),
    ("es", re.compile(r"(?<!\w)(lee|leer|en voz alta|este texto)(?!\w)", re.I)),
    ("it", re.compile(r"(?<!\w)(leggi|ad alta voce|questo testo)(?!\w)", re.I)),
    ("pt", re.compile(r"(?<!\w)(leia|em voz alta|este texto)(?!\w)", re.I)),
]
SLOWER = re.compile(r"\b(slower|more slowly|slow down|slowly)\b", re.I)
FASTER = re.compile(r"\b(faster|quicker|more quickly|speed up)\b", re.I)
QUOTES = [("\"", "\""), ("“", "”"), ("\"", "”"), ("“", "\""), ("«", "»"), ("„", "“"), ("「", "」"), ("'", "'"),
           ("‘", "’")]
COLON = re.compile(r"[:：]\s*")
SAY_EN = re.compile(
    r"(?<!\w)(?:say|says|saying|read|reads|recite|speak|speaks|pronounce)(?:\s+(?:aloud|out(?: loud)?))?"
    r"[:,]?\s+(.{1,20000})$",
    re.I | re.S,
)


MODIFIER_ONLY = re.compile(
    r"^(?:(?:(?:with|in|using) (?:an? |the )?\w+(?: \w+)? (?:voice|tone|accent|style)|again|instead|slower|faster|"
    r"louder|more slowly|more quickly|please|now|too)[\s,.!]*)+$", re.I)
