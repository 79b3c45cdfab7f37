"""The words the rules read a goal by, besides the deliverables' own cues (the services declare those, the
read-aloud verbs included: planner.vocab): operations no service offers, greetings, capability and
job-status questions, follow-up cues, durations, voices, styles, languages, quotes.

planner.intent's `read_rules` combines them into an Intent; they are kept here so each list can grow
without the reading logic around it changing.
"""

from __future__ import annotations

import re

#: Letters of the scripts written without spaces (CJK, kana, Thai): a cue inside a sentence still matches.
UNSPACED = "\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"


def words(*alternatives: str) -> re.Pattern[str]:
    """A case-blind pattern for whole words: not inside a longer word, except in scripts written without spaces."""
    edge = rf"[^\W{UNSPACED}]"
    return re.compile(rf"(?<!{edge})(" + "|".join(alternatives) + rf")(?!{edge})", re.I)


PORTRAIT_WORDS = words(r"portrait|face|headshot|selfie|person|presenter")
#: The deliverables' own cues are declared by the services that make them (planner.vocab); these are the
#: operations people ask for that no service offers, each with the attachment kind that makes it offered
#: after all (music: an attached song is a soundtrack). Checked before a topic marker only.
UNOFFERED: list[tuple[str, re.Pattern[str], str | None]] = [
    ("transcribe speech to text", words(r"transcri\w+|speech[- ]to[- ]text|write down what \w+ (?:says|said)|"
                                       r"(?:make|get|give me) (?:a |the )?transcript\w*|"
                                       r"(?:the )?(?:text|words|content|contents|lyrics) of (?:this|the|that|my|an?) "
                                       r"(?:speech|audio|recording|voice note|song|interview|lecture)|"
                                       r"what (?:is|was|gets) said in"), None),
    ("translate", words(r"translat\w+|übersetz\w*|tradu\w+"), None),
    ("compose music or a song", words(
        r"(?:compose|generate|make|create|write|produce|add|put) (?:me )?(?:a |an |some |the )?(?:[\w-]+ ){0,2}"
        r"(?:music|song|melody|jingle|beat|tune|soundtrack)"), "audio"),
    ("sing", words(r"sing|sings|singing|sung|karaoke"), None),
    ("noise reduction (reduce noise)", words(r"denois\w*|(?:reduce|remove|clean up|cut|get rid of) (?:the )?"
                           r"(?:background )?(?:noise|hiss|hum)|noise reduction|speech enhancement|"
                           r"(?:enhance|improve|clean up) (?:its |the |this |my )?"
                           r"(?:audio|sound|speech|voice|recording)(?: quality)?"), None),
    ("stabilise a video", words(r"stabili[sz]\w*|(?:less|not) shaky|remove (?:the )?(?:camera )?shake"), None),
    ("slow motion or speed changes", words(r"slow[- ]?mo(?:tion)?|time[- ]?lapse|(?:slow down|speed up) "
                                           r"(?:the |this |my )?(?:video|clip|footage)|(?:playback|double|half|"
                                           r"\d+(?:\.\d+)? ?x) speed|speed (?:of|up) (?:the |this |my )?(?:video|"
                                           r"clip|footage)"), None),
    ("extract audio", words(r"extract (?:the |its |this )?(?:audio|sound|voice|music)(?: (?:from|of|out of) "
                            r"(?:the |this |my )?(?:video|clip|file))?|(?:rip|pull) the (?:audio|sound)|"
                            r"(?:video|clip) to (?:mp3|audio)"),
     None),
    ("colourise (colorize)", words(
        r"colou?ri[sz](?:e|es|ing|ation)|colou?ri[sz]ed(?! (?:\w+ )?(?:image|picture|photo|drawing|illustration))|"
        r"add colou?rs? to|black[- ]and[- ]white "
                        r"(?:photo|video|image|picture) (?:in|into|to) colou?r"), None),
    ("describe an image, count objects or answer questions about it", words(
        r"describe (?:this|the|my|what(?:'s| is) in (?:this|the)) (?:image|picture|photo)|"
        r"what(?:'s| is) in (?:this|the|my) (?:image|picture|photo|video)|"
        r"how many \w+ (?:are )?in (?:this|the) (?:image|picture|photo)|"
        r"(?:identify|recogni[sz]e|detect) (?:the )?(?:objects?|people|faces?|text)|read the text in|"
        r"how many \w+ (?:are )?in (?:these|those) (?:images?|pictures?|photos?)|"
        r"caption (?:the|this|my|an?) (?:image|picture|photo)|"
        r"(?:image|picture|photo)\b(?:[^.]|\.\w){0,60}\b(?:contains?|containing|with) (?:some )?(?:\w+ )?text\b"
        r"(?:[^.]|\.\w){0,40}\bextract\w*|ocr|"
        r"(?:extract|get|pull|read) (?:the |any |all )?text (?:from|in|on|out of) (?:the |this |an? |my )?"
        r"(?:image|picture|photo)"), None),
    ("describe a recording", words(r"describe (?:this|the|my) (?:audio|recording|sound)|(?:text )?description of "
                                   r"(?:this|the|my) (?:audio|recording|sound)"), None),
    ("search the web, fetch the news, a web page or a download", words(
        r"(?:the )?(?:latest |today's |todays |current )(?:news|headlines|weather)|"
                                        r"weather (?:forecast|tomorrow|today|this week|in \w+)|"
                                        r"(?:news|headlines) (?:today|of the day)|search the (?:web|internet)|"
                                        r"browse|look up|google|download\w*|url of|web ?page|online article|"
                                        r"(?:at|from) [\"'“‘]?(?:https?|ftp)(?=://)|"
                                        r"on the (?:internet|web)|(?:find|finding|search for|look for) (?:me )?"
                                        r"(?:an? |some |the )?(?:\w+ ){0,2}(?:images?|pictures?|photos?|videos?|"
                                        r"clips?|tutorials?)"),
     None),
    ("book, buy or send things", words(r"book (?:me )?(?:a |an )?(?:flight|hotel|table|room|ticket|appointment)|"
                                       r"(?:buy|purchase) (?:me )?(?:a |an |some )?\w+|send (?:an? )?(?:email|"
                                       r"e-mail|message|text|sms)|schedule a (?:meeting|call)|set (?:a |an )?"
                                       r"(?:reminder|alarm)"), None),
    ("remove a background", words(r"remove (?:the )?background(?! (?:noise|music|hum))|green[- ]?screen|"
                                  r"cut out the (?:person|background)"), None),
    ("trim, crop or rotate a video", words(r"trim|crop|rotate|cut (?:the )?(?:first|last) \w+|mirror the"), None),
    ("swap faces", words(r"face[- ]?swap|swap (?:the |their )?faces|deepfake"), None),
    ("summarise", words(r"summar(?:y|ies|i[sz]\w*)|tl;?dr"), None),
    ("rewrite, paraphrase or expand a text", words(
        r"rewrit\w+|paraphras\w*|rephras\w*|reword\w*|article spinner|(?:simplify|expand|lengthen|shorten) (?:the |"
        r"this |my |that )?(?:\w+ )?(?:text|article|sentence|paragraph|passage)|(?:into|as) an? (?:longer|shorter|"
        r"simpler|expanded|more detailed|more descriptive)\b[^.]{0,30}?\b(?:version|description|text|article)|"
        r"(?:simplify|expand|paraphrase|shorten) (?:it|them)\b|(?:be|get|is|been) (?:simplified|expanded)\b|"
        r"(?:new,? |an? )?unique(?:,? different)? version"), None),
    ("check or correct grammar and spelling", words(
        r"grammar|grammatical(?:ly)?|spell[- ]?check\w*|proofread\w*|(?:correct|fix) (?:the |any |all )?(?:\w+ )?"
        r"(?:errors|mistakes|typos|spelling)"), None),
    ("text analysis (named entities, sentiment analysis, keywords)", words(
        r"named entit\w*|sentiment|keywords?|classify|"
                                                              r"part[- ]of[- ]speech"), None),
    ("suggest topics or ideas (brainstorming)", words(
        r"brainstorm\w*|(?:relevant|related) (?:topics|ideas)|topic ideas|(?:generate|suggest|give me|list) (?:some |a "
        r"list of )?(?:\w+ )?(?:topics|ideas)\b"), None),
    ("mix or join recordings (audio editing)", words(
        r"mix(?:ing)? (?:\w+ ){0,2}(?:audio|sound|tracks?|recordings?|music)|keep both|audio splic\w*|"
        r"(?:combine|merge|join|splice|concatenate) (?:the |these |my |both |two )*(?:audio|sound) "
        r"(?:files|tracks|clips|recordings)"), None),
    ("make sound from a picture", words(
        r"(?:audio|sound|sounds|music) (?:of|from) (?:this|the|that|my|an?) (?:image|picture|photo)"), None),
    ("draw a waveform or spectrogram of a recording", words(r"waveforms?|spectrograms?"), None),
    ("audio effects", words(r"reverb|equali[sz]\w*|echo effect|audio effects?|pitch[- ]shift\w*|auto-?tune"), None),
    ("image processing (stitch a panorama, an edge map, pose-guided images, depth, segmentation)", words(
        r"panorama\w*|canny|edge (?:map|detection)|pose of|depth map|segment\w*|(?:label|detect\w*|identify) "
        r"(?:and label )?(?:the )?objects?|object detection"), None),
    ("a slideshow from images", words(r"slide ?shows?"), None),
    ("extract a still frame from a video", words(
        r"(?:still |single )?(?:image|frame|picture|screenshot|snapshot)s? (?:out of|from) "
        r"(?:the |this |that |my |an? )?(?:\w+ )?(?:video|clip|footage)|"
        r"extract (?:an? |the )?(?:still|frame|image)s?(?! text)"), None),
    ("errands (a job application, an alarm, installing software)", words(r"apply for|set an alarm|install\w*"), None),
    ("remove things from a picture or video", words(r"remove (?:the |a |an )?(?:watermark|logo|object|text|person|"
                                                    r"people|subtitles?)"), None),
    ("make other kinds of files (3D models, GIFs, websites, documents, blog posts)", words(
        r"3d (?:model|scene|object|animation)|gifs?|website|web ?page|spreadsheet|powerpoint|slide ?deck|pdf|"
        r"blog ?posts?|essays?"), None),
    ("text-to-video (a video of a scene)", words(
        r"(?:video|clip|animation|footage) of (?:an? |the |some )?(?!(?:me|my|this|her|him|person|presenter|man|woman|"
        r"face|portrait|someone)\b)(?:\w+ ){0,2}(?:cat|dog|car|bird|city|ocean|sea|forest|sunset|rocket|dragon|"
        r"horse|robot|beach|mountain|river|landscape|drone|fish|spaceship|astronaut)s?\b"), None),
]
#: Unoffered operations whose result is the words the rest of the request would use ("translate it and read it
#: aloud"): given words are their input, so speaking them as given would do something else.
REWRITES_WORDS = frozenset({"transcribe speech to text", "translate", "summarise",
                            "rewrite, paraphrase or expand a text"})
#: "... with a female voice": speech is asked for, whatever else the request asks that no service offers.
VOICE_ASKED = words(r"(?:in|with|using) (?:an? |the )?(?:\w+ )?voice")
#: Unoffered operations whose input is a recording: "speech" or "audio" beside them names it, not speech to make.
HEARS = frozenset({"transcribe speech to text", "noise reduction (reduce noise)", "extract audio", "audio effects"})
#: A video "of" a scene (ocean waves, a cat playing) with no one speaking: text to video, which no service offers
#: (a talking video is a face speaking). Checked only when no word asks for speech or a presenter.
VIDEO_OF = words(r"(?:videos?|clips?|movies?|films?|animations?|footage|vídeos?|vidéos?) (?:\w+ )?(?:of|showing|where|"
                 r"in which|de|von|mit|con|du|des|based on|from|that visuali[sz]es)|visuali[sz]e")
#: Words that ask for what a video shows rather than who speaks in it: scenes, which no service makes.
SCENE_WORDS = words(r"visuals?|visually|visuali[sz]ation|depict\w*|portray\w*|illustrat\w*|"
                    r"(?:text |scene )?description")
#: A video asked for with a voice over its pictures ("a video with a voice-over", "a narrated clip"): with no video
#: given and no one on screen, the pictures would be scenes, which no service makes. ("A voice-over for a video"
#: asks for the voice-over.)
VOICE_OVER = words(r"(?:videos?|clips?|movies?|films?|animations?)\b[^.]{0,60}?\bwith (?:an? |the |some |my )?(?:\w+ )?"
                   r"(?:voice[- ]?overs?|narrations?)|narrated (?:\w+ )?(?:videos?|clips?|movies?|films?)")
#: Words that ask for a face speaking: a talking video, whatever else it shows.
PRESENTER = words(r"portrait|face|headshot|selfie|person|presenter|host|talking[- ]head|avatar|lip[- ]?sync|talk\w*|"
                  r"speak\w*")
SPOKEN_VIDEO = words(r"about|explain\w*|talk\w*|say\w*|speak\w*|narrat\w*|present\w*|voice\w*|speech|tell\w*|"
                     r"introduc\w*|teach\w*|lesson|tutorial|explainer|avatar|talking[- ]head|lip[- ]?sync|"
                     r"announce\w*|interview|vlog|greeting|message|über|explica\w*|erklär\w*|"
                     r"(?:vid[ée]os?|vídeos?|clips?) (?:\w+ )?(?:sur|sobre)")  # else "sur une plage" is a place
#: "a video about how to translate": the words after it, up to the clause's end, name a subject, not an operation.
TOPIC_MARKER = words(r"about|explaining|explains|describing|on the topic of|on how|regarding|concerning|"
                     r"sur|über|sobre|su|о|عن|关于")
#: The goal names an attachment ("this photo", "the attached file").
ATTACHED_WORDS = words(r"attached|attachment|uploaded|enclosed|this (?:photo|picture|image|clip|recording|file|song|"
                       r"track|audio file|mp3|wav|png|jpe?g|mp4|selfie|portrait|footage)|my (?:photo|picture|selfie|"
                       r"recording|clip|footage|song)")
#: "this video", "my photo": the goal points at an attachment of that kind, not at a new one to make.
KIND_NOUNS = {"video": r"videos?|clips?|footage|films?|movies?",
              "image": r"photos?|pictures?|images?|portraits?|selfies?",
              "audio": r"recordings?|songs?|tracks?|audio|voice notes?|mp3|wav"}
THIS_KIND = {kind: words(rf"(?:this|that|these|my|our|the|the attached|the uploaded|attached) (?:{nouns})")
             for kind, nouns in KIND_NOUNS.items()}
#: The plain noun of a kind ("a video", "the clip"): with a file of that kind attached it may name that file.
PLAIN_NOUN = {kind: re.compile(nouns, re.I) for kind, nouns in KIND_NOUNS.items()}
#: Words that join the attachments into one thing ("sync the voice-over with the video", "combine them").
COMBINE = words(r"synchroni[sz]\w*|sync(?:ed|s)?|combin\w*|merg\w*|together")
#: "... and also a poster": one more deliverable listed, not a step of the first.
CLAUSE_END = re.compile(r"[,.;!?]|\b(?:and|then|but|plus)\b", re.I)
AND_ALSO = words(r"and(?: also)?|plus|also|as well as")
#: What a voice sample says, in quotes: "the recording says "...""
REFERENCE = re.compile(r"(?:recording|sample|audio|clip|voice note)\s+says\s*[:,]?\s*[\"“«‘']([^\"”»]{1,2000}?)"
                       r"[\"”»’'](?!\w)", re.I)
#: Words before a cue that ask for the thing not to be made: "no subtitles", "without a voice-over".
NEGATION = re.compile(r"(?<!\w)(?:no|without|not|never|don't want|do not want)\s+(?:\w+\s+)?$", re.I)
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
#: A question whether something can be done ("is it possible to ...?", "是否支持...？"): answered with what can.
SUPPORT_QUESTION = words(
    r"is it possible|is there (?:a|any) (?:way|option|setting)|(?:does|do|can|will) (?:it|this|you|spinbot|the \w+) "
    r"(?:support|handle|accept|work with)|do you support|can i (?:use|change|choose|pick|upload)|"
    r"est-(?:il|ce) possible|es posible|ist es möglich|是否|支持|できますか|可能ですか")
JOB_STATUS = re.compile(
    r"\b(status|progress|how('s| is) (it|my|the) (going|job|video)|is it (done|ready|finished)|"
    r"are you done|how long (will|does) it|when will it be (done|ready)|(done|ready|finished) yet|is it still running|"
    r"how far along|eta)\b",
    re.I,
)
QUESTION = re.compile(
    r"([?？]\s*$|^\s*(what|why|how|when|where|who|which|is|are|can|could|does|do|explain|describe|tell me|"
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
    r"(?<![\w:.])(?:(\d+(?:\.\d+)?)[\s-]*(seconds?|secs?|s|minutes?|mins?|m|secondes?|sekunden|segundos?|secondi)"
    r"|(" + "|".join(sorted(map(re.escape, NUMBER_WORDS), key=len, reverse=True)) + r")[\s-]+"
    r"(seconds?|minutes?|secondes?|sekunden|segundos?|secondi))(?!\w)",
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
#: Words that mark the next quoted or colon-led text as words to speak: "with the following text: '...'".
MARKED_WORDS = words(r"(?:with|using|use|the following|this|these|that) (?:the )?(?:text|words|script|narration|"
                     r"lines?|message|sentences?|caption)(?! description| prompt)|"
                     r"(?:text|words|narration|lines?|message)\s*[:：]|subtitles?|captions?")
#: A quoted file name is a file, not words to speak.
FILE_NAME = re.compile(r"^[\w\-. ]{1,120}\.(?:txt|md|mp3|wav|m4a|ogg|flac|mp4|mov|webm|mkv|avi|png|jpe?g|gif|webp|pdf|"
                       r"docx?|srt|vtt|json|csv)$", re.I)
#: A file name the goal mentions ("read notes.txt aloud", "'clip.mp4'").
FILE_NAMED = re.compile(r"(?<![\w/.])([\w\-]{1,120}\.(?:txt|md|mp3|wav|m4a|ogg|flac|mp4|mov|webm|mkv|avi|png|jpe?g|gif|"
                        r"webp|pdf|docx?|srt|vtt|csv))(?![\w/])", re.I)
#: Words that point at a file instead of being words to speak: "say what is in the file", "read this document".
FILE_REFERENCE = words(r"(?:the|this|that|my|attached|uploaded|enclosed)(?: attached| uploaded)? (?:text )?(?:file|"
                       r"document|notes|article|transcript|subtitles?)|what(?:'s| is| it says) in (?:it|the|this|that)|"
                       r"its (?:contents|text|words)|the contents")
COLON = re.compile(r"[:：]\s*")


def words_after(verbs: str) -> re.Pattern[str]:
    """"say: hello", "read aloud this": one of `verbs` (a declared offer's `says`), then the words (group 1)."""
    return re.compile(rf"(?<!\w)(?:{verbs})(?:\s+(?:aloud|out(?: loud)?))?[:,]?\s+(.{{1,20000}})$", re.I | re.S)


MODIFIER_ONLY = re.compile(
    r"^(?:(?:(?:with|in|using) (?:an? |the )?\w+(?: \w+)? (?:voice|tone|accent|style)|again|instead|slower|faster|"
    r"louder|more slowly|more quickly|please|now|too)[\s,.!]*)+$", re.I)
