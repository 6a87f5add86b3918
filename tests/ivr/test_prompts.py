"""Prompts: numbers made speakable (pure), real espeak-ng renders, recorded files converted with
ffmpeg, the cache, paths that must stay inside the prompts folder, and pre-rendering a flow."""

from __future__ import annotations

import os
import shutil
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from pydub import AudioSegment
from pydub.generators import Sine

from cc_core import speech
from cc_core.ivr import prompts
from cc_core.ivr.flow import Collect, Flow, Hangup, Http, Menu, Node, Play, Prompt, Queue, Survey, Voicemail
from cc_core.ivr.prompts import PromptError, PromptLibrary, speakable

# --- speakable (pure) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("金额1234.50元", "金额一千二百三十四点五零元"),
        ("2026-10-01", "二〇二六年十月一日"),
        ("2026/1/5", "二〇二六年一月五日"),
        ("2026.10.01", "二〇二六年十月一日"),
        ("2026年10月1日", "二〇二六年十月一日"),
        ("请拨打12333", "请拨打幺二三三三"),
        ("12333", "幺二三三三"),
        ("请输入110105199001011234", "请输入幺幺零幺零五幺九九零零幺零幺幺二三四"),
        ("11010519900101123X", "幺幺零幺零五幺九九零零幺零幺幺二三X"),
        ("010-63000000", "零幺零-六三零零零零零零"),
        ("转分机8001", "转分机八零零幺"),
        ("工号是1001", "工号是幺零零幺"),
        ("按1", "按一"),
        ("请按0", "请按零"),
        ("18位身份证号码", "十八位身份证号码"),
        ("105元", "一百零五元"),
        ("1005元", "一千零五元"),
        ("10010元", "一万零一十元"),
        ("12345元", "一万二千三百四十五元"),
        ("150000元", "十五万元"),
        ("100001000元", "一亿零一千元"),
        ("2000元", "两千元"),
        ("0.5", "零点五"),
        ("1,234.50元", "一千二百三十四点五零元"),
        ("50%", "百分之五十"),
        ("3.5%", "百分之三点五"),
        ("工作时间9:00至17:30", "工作时间九点至十七点三十分"),
        ("9：05", "九点零五分"),
        ("１２３元", "一百二十三元"),  # fullwidth digits, which espeak-ng skips silently
        ("2026-13-45", "两千零二十六-十三-四十五"),  # not a date
        ("您好，欢迎致电。", "您好，欢迎致电。"),
    ],
)
def test_speakable(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


def test_speakable_reads_back_an_http_answer() -> None:
    text = "您的养老金本月10月已于2026-10-01发放，金额1234.50元。"
    assert speakable(text) == "您的养老金本月十月已于二〇二六年十月一日发放，金额一千二百三十四点五零元。"


def test_speakable_leaves_no_digits() -> None:
    for text in ("12", "100", "1000", "10000元", "99999999元", "20260101", "1.2.3", "3:99"):
        assert not any(char.isdigit() for char in speakable(text)), text


# --- rendering ------------------------------------------------------------------------------------


@pytest.fixture
def need_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "ffmpeg") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed: run scripts/setup.sh", pytrace=False)


@pytest.fixture
def library(tmp_path: Path) -> PromptLibrary:
    (tmp_path / "prompts").mkdir()
    return PromptLibrary(tmp_path / "cache", tmp_path / "prompts")


def assert_switch_wav(path: Path, min_ms: int = 300) -> AudioSegment:
    """An 8 kHz mono 16-bit PCM WAV with audible sound, inside the cache."""
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getcomptype() == "NONE"
    audio = AudioSegment.from_wav(path)
    assert len(audio) >= min_ms
    assert audio.rms > 100, "silent audio"
    return audio


def counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the texts actually sent to render_text (cache misses)."""
    calls: list[str] = []
    real = prompts.render_text

    def render(text: str, voice: str, cache_dir: Path) -> Path:
        calls.append(text)
        return real(text, voice, cache_dir)

    monkeypatch.setattr(prompts, "render_text", render)
    return calls


def tone(path: Path, fmt: str, ms: int = 800, rate: int = 44100, channels: int = 2) -> Path:
    audio = Sine(440, sample_rate=rate).to_audio_segment(duration=ms, volume=-6).set_channels(channels)
    audio.export(path, format=fmt)
    return path


@pytest.mark.usefixtures("need_tools")
def test_text_prompt_renders_8khz_mono_wav(library: PromptLibrary) -> None:
    path = library.resolve(Prompt(text="您好，欢迎致电丰台区社保服务热线。"))
    assert path.parent == library.cache_dir
    assert_switch_wav(path, min_ms=1000)


@pytest.mark.usefixtures("need_tools")
def test_cache_hit_does_not_render_again(library: PromptLibrary, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting(monkeypatch)
    first = library.resolve(Prompt(text="请按1"))
    mtime = first.stat().st_mtime_ns
    second = library.resolve(Prompt(text="请按1", name="other_name"))
    assert second == first
    assert calls == ["请按一"]  # the text is made speakable before rendering
    assert first.stat().st_mtime_ns == mtime
    # A new library on the same cache (a restart) reuses the file too.
    assert PromptLibrary(library.cache_dir, library.prompts_dir).resolve(Prompt(text="请按1")) == first
    assert len(calls) == 1


@pytest.mark.usefixtures("need_tools")
def test_dynamic_text_is_made_speakable_and_kept_apart(library: PromptLibrary) -> None:
    path = library.text_to_file("您的养老金已于2026-10-01发放，金额1234.50元。")
    assert path.parent == library.cache_dir / "dynamic"
    assert_switch_wav(path, min_ms=2000)
    assert library.text_to_file("您的养老金已于二〇二六年十月一日发放，金额一千二百三十四点五零元。") == path
    assert library.prune_dynamic(max_age=3600) == 0
    old = time.time() - 7200
    os.utime(path, (old, old))
    assert library.prune_dynamic(max_age=3600) == 1
    assert not path.exists()


def test_empty_prompts_are_refused(library: PromptLibrary) -> None:
    with pytest.raises(PromptError, match="empty"):
        library.text_to_file("  ")
    with pytest.raises(PromptError, match="neither text nor file"):
        library.resolve(Prompt(name="nothing"))


@pytest.mark.usefixtures("need_tools")
@pytest.mark.parametrize("fmt", ["wav", "mp3", "ogg"])
def test_recorded_file_is_converted(library: PromptLibrary, fmt: str) -> None:
    tone(library.prompts_dir / f"hold.{fmt}", fmt)
    path = library.resolve(Prompt(file=f"hold.{fmt}"))
    assert path.parent == library.cache_dir / "files"
    audio = assert_switch_wav(path, min_ms=700)
    assert len(audio) < 1000


@pytest.mark.usefixtures("need_tools")
def test_recorded_file_in_a_subfolder(library: PromptLibrary) -> None:
    (library.prompts_dir / "menus").mkdir()
    tone(library.prompts_dir / "menus" / "main.wav", "wav", rate=16000, channels=1)
    assert_switch_wav(library.resolve(Prompt(file="menus/main.wav")))


@pytest.mark.usefixtures("need_tools")
def test_changed_upload_makes_a_new_cache_entry(library: PromptLibrary) -> None:
    source = tone(library.prompts_dir / "welcome.mp3", "mp3", ms=500)
    first = library.resolve(Prompt(file="welcome.mp3"))
    assert library.resolve(Prompt(file="welcome.mp3")) == first
    tone(source, "mp3", ms=1500)
    second = library.resolve(Prompt(file="welcome.mp3"))
    assert second != first
    assert len(AudioSegment.from_wav(second)) > 1400
    assert len(AudioSegment.from_wav(first)) < 600  # the old entry is untouched


@pytest.mark.usefixtures("need_tools")
@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.mp3", os.urandom(4000)),
        ("truncated.wav", b"RIFF\x24\x08\x00\x00WAVEfmt "),
        ("empty.ogg", b""),
        ("notes.wav", "这不是录音".encode()),
    ],
)
def test_corrupted_upload_names_the_file(library: PromptLibrary, name: str, content: bytes) -> None:
    (library.prompts_dir / name).write_bytes(content)
    with pytest.raises(PromptError, match=name.replace(".", r"\.")):
        library.resolve(Prompt(file=name))
    files = library.cache_dir / "files"
    assert not files.exists() or not list(files.iterdir()), "a failed conversion left a file in the cache"


def test_missing_file(library: PromptLibrary) -> None:
    with pytest.raises(PromptError, match="does not exist"):
        library.resolve(Prompt(file="nothing.wav"))
    (library.prompts_dir / "folder.wav").mkdir()
    with pytest.raises(PromptError, match="does not exist"):
        library.resolve(Prompt(file="folder.wav"))


@pytest.mark.parametrize("name", ["../outside.wav", "menus/../../outside.wav", "", "a\0b.wav"])
def test_relative_escapes_are_refused(library: PromptLibrary, name: str) -> None:
    tone(library.prompts_dir.parent / "outside.wav", "wav")
    with pytest.raises(PromptError, match="inside"):
        library.resolve(Prompt(file=name))


def test_absolute_paths_are_refused(library: PromptLibrary) -> None:
    inside = tone(library.prompts_dir / "hold.wav", "wav")
    for name in (str(inside), "/etc/passwd"):
        with pytest.raises(PromptError, match="inside"):
            library.resolve(Prompt(file=name))


def test_symlinks_pointing_outside_are_refused(library: PromptLibrary, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    tone(outside / "x.wav", "wav")
    (library.prompts_dir / "link.wav").symlink_to(outside / "x.wav")
    (library.prompts_dir / "linked").symlink_to(outside)
    for name in ("link.wav", "linked/x.wav"):
        with pytest.raises(PromptError, match="points outside"):
            library.resolve(Prompt(file=name))


@pytest.mark.usefixtures("need_tools")
def test_symlink_inside_the_prompts_folder_is_fine(library: PromptLibrary) -> None:
    tone(library.prompts_dir / "real.wav", "wav")
    (library.prompts_dir / "alias.wav").symlink_to("real.wav")
    assert library.resolve(Prompt(file="alias.wav")) == library.resolve(Prompt(file="real.wav"))


def test_half_written_file_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A render that dies while writing leaves nothing under the final name (a crash mid-write)."""
    source = tone(tmp_path / "in.wav", "wav")
    target = tmp_path / "cache" / "key.wav"
    target.parent.mkdir()

    def die_mid_write(self: AudioSegment, out: object, format: str) -> None:
        out.write(b"RIFF\x00\x00")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(AudioSegment, "export", die_mid_write)
    with pytest.raises(OSError, match="disk full"):
        prompts.to_switch_wav(source, target)
    assert list(target.parent.iterdir()) == []


def test_leftover_temporary_files_are_not_cache_entries(
    library: PromptLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "请稍候"
    key = prompts.prompt_key(text, library.voice)
    library.cache_dir.mkdir()
    (library.cache_dir / f".{key}.abc123.part").write_bytes(b"RIFF")  # what a crash leaves
    calls = counting(monkeypatch)
    assert_switch_wav(library.resolve(Prompt(text=text)))
    assert calls == [text]


@pytest.mark.usefixtures("need_tools")
def test_concurrent_requests_for_one_prompt_render_once(
    library: PromptLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting(monkeypatch)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(library.text_to_file("请稍候。"))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 6
    assert calls == ["请稍候。"]
    assert_switch_wav(results[0])


# --- prepare(flow) --------------------------------------------------------------------------------


def sample_flow() -> Flow:
    menu_main = Prompt(text="咨询业务请按1，人工服务请按0。", name="menu_main")
    bad_input = Prompt(text="您的输入有误。", name="bad_input")
    nodes: list[Node] = [
        Play("welcome", prompt=Prompt(text="您好，欢迎致电社保服务热线。"), next="main_menu"),
        Menu(
            "main_menu",
            prompt=menu_main,
            choices={"1": "id_number", "0": "agent"},
            invalid=bad_input,
            no_input=Prompt(text="我们没有收到您的按键。"),
            on_fail="agent",
        ),
        Collect(
            "id_number",
            prompt=Prompt(text="请输入您的18位身份证号码，输入完毕请按井号键。"),
            invalid=Prompt(text="身份证号码有误。"),
            next="query",
            on_fail="agent",
        ),
        Http("query", url="http://127.0.0.1:8090/q", say="金额{amount}元", next="leave", on_error="agent"),
        Voicemail("leave", prompt=Prompt(file="beep_intro.wav"), next="survey"),
        Survey("survey", next="bye"),
        Queue("agent", queue="general"),
        Hangup("bye", prompt=Prompt(text="感谢您的来电，再见。")),
    ]
    return Flow(
        name="main",
        title="主流程",
        start="welcome",
        nodes={node.name: node for node in nodes},
        prompts={"menu_main": menu_main, "bad_input": bad_input, "music": Prompt(file="hold.mp3", name="music")},
        source=Path("ivr_flows/main.yaml"),
        version="0" * 64,
    )


EXPECTED_PLACES = {
    "prompts.menu_main",
    "prompts.bad_input",
    "prompts.music",
    "nodes.welcome.prompt",
    "nodes.main_menu.prompt",
    "nodes.main_menu.invalid",
    "nodes.main_menu.no_input",
    "nodes.id_number.prompt",
    "nodes.id_number.invalid",
    "nodes.leave.prompt",
    "nodes.bye.prompt",
}


@pytest.mark.usefixtures("need_tools")
def test_prepare_renders_every_prompt_of_a_flow(library: PromptLibrary, monkeypatch: pytest.MonkeyPatch) -> None:
    tone(library.prompts_dir / "hold.mp3", "mp3")
    tone(library.prompts_dir / "beep_intro.wav", "wav")
    calls = counting(monkeypatch)
    flow = sample_flow()
    ready = library.prepare(flow)
    assert set(ready) == EXPECTED_PLACES
    for path in set(ready.values()):
        assert_switch_wav(path)
    # A named prompt used by a node is rendered once and shared.
    assert ready["prompts.menu_main"] == ready["nodes.main_menu.prompt"]
    assert ready["prompts.bad_input"] == ready["nodes.main_menu.invalid"]
    assert len(calls) == 7
    # What the runtime asks for later is already there.
    assert library.resolve(flow.node("id_number").prompt) == ready["nodes.id_number.prompt"]  # type: ignore[attr-defined]
    assert library.prepare(flow) == ready
    assert len(calls) == 7


def slow_renders(monkeypatch: pytest.MonkeyPatch, fail: str | None = None) -> Callable[[], int]:
    """Replace TTS by a slow fake; returns a function giving the most renders seen at once."""
    lock = threading.Lock()
    state = {"now": 0, "most": 0}

    def render(text: str, voice: str, cache_dir: Path) -> Path:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.05)
            if fail and fail in text:
                raise PromptError(f"espeak-ng failed for voice {voice}: boom")
            cache_dir.mkdir(parents=True, exist_ok=True)
            target = cache_dir / f"{prompts.prompt_key(text, voice)}.wav"
            target.write_bytes(b"fake")
            return target
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(prompts, "render_text", render)
    return lambda: state["most"]


def text_flow(count: int) -> Flow:
    nodes: dict[str, Node] = {f"p{i}": Play(f"p{i}", prompt=Prompt(text=f"提示{i}"), next="bye") for i in range(count)}
    nodes["bye"] = Hangup("bye")
    return Flow("many", "多提示", "p0", nodes, {}, Path("ivr_flows/many.yaml"), "0" * 64)


def test_prepare_renders_at_most_two_at_a_time(library: PromptLibrary, monkeypatch: pytest.MonkeyPatch) -> None:
    most = slow_renders(monkeypatch)
    ready = library.prepare(text_flow(8))
    assert len(ready) == 8
    assert most() == 2


def test_prepare_names_every_failing_prompt(library: PromptLibrary, monkeypatch: pytest.MonkeyPatch) -> None:
    slow_renders(monkeypatch, fail="提示三")  # as made speakable
    flow = text_flow(5)
    nodes = {**flow.nodes, "rec": Play("rec", prompt=Prompt(file="missing.wav"), next="bye")}
    with pytest.raises(PromptError) as caught:
        library.prepare(Flow(flow.name, flow.title, flow.start, nodes, {}, flow.source, flow.version))
    message = str(caught.value)
    assert "nodes.p3.prompt" in message and "boom" in message
    assert "nodes.rec.prompt" in message and "missing.wav" in message
    assert "nodes.p1.prompt" not in message


# --- option injection (issue 11 item 3) -----------------------------------------------------------


def wav_ms(path: Path) -> int:
    return len(AudioSegment.from_wav(path))


@pytest.mark.usefixtures("need_tools")
def test_a_prompt_starting_with_a_dash_is_spoken_not_taken_for_an_option(tmp_path: Path) -> None:
    """``-f<file>`` as a prompt (or an answer read back) must be heard as those characters: on the
    old code espeak-ng took it for its -f option and read the file aloud to the caller."""
    secret = tmp_path / "secret.txt"
    secret.write_text("这是不应该被读出来的秘密内容。" * 20, encoding="utf-8")
    cache = tmp_path / "cache"
    as_option = prompts.render_text(f"-f{secret}", prompts.DEFAULT_VOICE, cache)
    # The same characters after a space are never an option, on the old code either.
    as_text = prompts.render_text(f" -f{secret}", prompts.DEFAULT_VOICE, cache)
    the_file = prompts.render_text(secret.read_text(encoding="utf-8"), prompts.DEFAULT_VOICE, cache)
    assert wav_ms(the_file) > 15000  # what reading the file sounds like: long
    assert abs(wav_ms(as_option) - wav_ms(as_text)) < 500, (wav_ms(as_option), wav_ms(as_text), wav_ms(the_file))
    assert wav_ms(as_option) < wav_ms(the_file) / 2


def test_the_text_goes_to_espeak_on_stdin_never_as_an_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[list[str], object]] = []

    def fake_run(args: list[str], **kwargs: object) -> object:
        seen.append((list(args), kwargs.get("input")))
        tone(Path(args[args.index("-w") + 1]), "wav")
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(speech.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(speech.subprocess, "run", fake_run)
    text = "--version -f/etc/passwd -w/tmp/x.wav"
    prompts.render_text(text, "cmn-latn-pinyin", tmp_path / "cache")
    [(args, stdin)] = seen
    assert stdin == text
    assert args[-1] == "--stdin"
    assert all(text not in arg and "/etc/passwd" not in arg for arg in args)
