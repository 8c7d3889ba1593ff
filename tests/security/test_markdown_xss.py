"""Markdown XSS corpus: every payload goes through the real display pipeline (render → nh3 → [[link]] resolution for
a viewer) and the output is parsed with html.parser; nothing executable may survive. A browser test then renders the
worst payloads on a real page in headless Chromium and watches for dialogs and an injected marker."""
from __future__ import annotations

import datetime as dt
import html
import re
from html.parser import HTMLParser

import pytest

from notes.markdown import render_markdown

J = "javascript"
PAYLOADS = [
    # script tags, raw HTML
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    "<script/xss>alert(1)</script>",
    '<<script>alert(1);//<</script>',
    "<iframe src=javascript:alert(1)></iframe>",
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">',
    '<base href="javascript:alert(1)//">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<link rel="stylesheet" href="javascript:alert(1)">',
    "<style>@import 'javascript:alert(1)'; body{background:url(javascript:alert(1))}</style>",
    '<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">x</button></form>',
    '<template><script>alert(1)</script></template>',
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
    # event handlers
    "<img src=x onerror=alert(1)>",
    "<img src=x OnErRoR=alert(1)>",
    '<img src="x" onerror="alert(1)"/>',
    "<body onload=alert(1)>",
    '<div onmouseover="alert(1)">hover</div>',
    '<a href="#" onclick="alert(1)">x</a>',
    '<details open ontoggle=alert(1)><summary>x</summary></details>',
    '<input autofocus onfocus=alert(1)>',
    '<video><source onerror="alert(1)"></video>',
    '<marquee onstart=alert(1)>x</marquee>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<td style="text-align:left;background:url(javascript:alert(1))">x</td>',
    '<span style="x:expression(alert(1))">x</span>',
    # javascript:/data:/vbscript: links, obfuscated
    f"[click]({J}:alert(1))",
    f"[click]({J.upper()}:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1))",
    "[click](java&#x09;script:alert(1))",
    "[click](java%0ascript:alert(1))",
    "[click]( javascript:alert(1))",
    "[click](<javascript:alert(1)>)",
    '<a href="jav&#x0A;ascript:alert(1)">x</a>',
    '<a href="&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058alert(1)">x</a>',
    "[click](data:text/html,<script>alert(1)</script>)",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](vbscript:msgbox(1))",
    "[click](VBScript:msgbox(1))",
    "![img](javascript:alert(1))",
    "![img](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "[ref]\n\n[ref]: javascript:alert(1)",
    "[ref][x]\n\n[x]: data:text/html,<script>alert(1)</script> \"title\"",
    "<javascript:alert(1)>",
    "javascript:alert(1) as a bare word and https://example.com/?q=<script>",
    # link and image titles
    '[x](https://example.com "a\\" onmouseover=\\"alert(1)")',
    "[x](https://example.com 'a\" onmouseover=\"alert(1)')",
    '![x](https://example.com/i.png "t\\" onerror=\\"alert(1)")',
    '[x](https://example.com/"onmouseover="alert(1))',
    # SVG and MathML
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">x</text></a></svg>',
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    '<svg><foreignObject><iframe src="javascript:alert(1)"></iframe></foreignObject></svg>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<math href="javascript:alert(1)"><mi>x</mi></math>',
    '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x</maction></math>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
    # math-renderer injection via $…$ and $$…$$
    "$<script>alert(1)</script>$",
    "$$<img src=x onerror=alert(1)>$$",
    r"$\href{javascript:alert(1)}{x}$",
    r"$$\href{javascript:alert(1)}{click}$$",
    r"$\url{javascript:alert(1)}$",
    r"$\text{<img src=x onerror=alert(1)>}$",
    r"$\mathrm{\"onmouseover=alert(1)}$",
    r"$$\begin{array}{c}<svg onload=alert(1)>\end{array}$$",
    r"$\style{background:url(javascript:alert(1))}{x}$",
    "$x$<img src=x onerror=alert(1)>$y$",
    # [[links]] with injection
    '[[run:1"onmouseover="alert(1)]]',
    "[[paper:<script>alert(1)</script>]]",
    "[[paper:x\"><img/src=x/onerror=alert(1)>]]",
    "[[log:2024-01-01'onfocus='alert(1)]]",
    "[[run:javascript:alert(1)]]",
    # footnotes
    "text[^1]\n\n[^1]: <img src=x onerror=alert(1)>",
    '[^a"onmouseover="alert(1)]\n\n[^a"onmouseover="alert(1)]: note',
    "x[^1]\n\n[^1]: [y](javascript:alert(1))",
    # code-fence languages and attr_list
    '```js" onmouseover="alert(1)\ncode\n```',
    "```<script>alert(1)</script>\ncode\n```",
    '~~~{.python onclick="alert(1)"}\ncode\n~~~',
    "`x`{: onclick=alert(1) }",
    'para\n{: onmouseover="alert(1)" style="background:url(javascript:alert(1))" }',
    '[link](https://example.com){: onclick="alert(1)" href="javascript:alert(1)" }',
    "# heading {: #x onclick=alert(1) }",
    # HTML inside Markdown constructs
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "> <a href=javascript:alert(1)>quote</a>",
    "- [ ] <input type=text onfocus=alert(1) autofocus>",
    "*emph <svg/onload=alert(1)>*",
    "<!-- --><script>alert(1)</script><!-- -->",
    "<![CDATA[<script>alert(1)</script>]]>",
]

URL_ATTRS = {"href", "src", "xlink:href", "action", "formaction", "background", "poster", "data", "srcset",
             "codebase", "cite", "longdesc", "dynsrc", "lowsrc", "ping"}
FORBIDDEN_TAGS = {"script", "iframe", "object", "embed", "base", "meta", "link", "style", "form", "button", "svg",
                  "foreignobject", "template", "noscript", "video", "audio", "source", "frame", "frameset", "applet",
                  "maction", "animate", "set", "marquee", "body", "html", "textarea", "select", "option"}
SAFE_SCHEMES = {"http", "https", "mailto"}


def _scheme(value: str) -> str | None:
    """The URL scheme a browser would see: entities decoded, whitespace and control characters removed."""
    clean = re.sub(r"[\x00-\x20\x7f]", "", html.unescape(value)).lower()
    m = re.match(r"^([a-z][a-z0-9+.\-]*):", clean)
    return m.group(1) if m else None


class ExecutableFinder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append(f"{tag}[{name}]")
            if name in ("srcdoc", "formaction", "xlink:href", "xmlns:xlink", "autofocus"):
                self.problems.append(f"{tag}[{name}]")
            if name in URL_ATTRS and (scheme := _scheme(value)) is not None and scheme not in SAFE_SCHEMES:
                self.problems.append(f"{tag}[{name}={value!r}]")
            if name == "style" and re.search(r"url\s*\(|expression\s*\(|@import|javascript:", value, re.I):
                self.problems.append(f"{tag}[style={value!r}]")

    handle_startendtag = handle_starttag


def executable_parts(rendered: str) -> list[str]:
    finder = ExecutableFinder()
    finder.feed(rendered)
    finder.close()
    return finder.problems


def test_the_corpus_is_big_enough_and_the_checker_catches_what_it_should():
    assert len(PAYLOADS) >= 60 and len(set(PAYLOADS)) == len(PAYLOADS)
    # The checker itself must flag raw payloads, or passing tests would mean nothing.
    for raw in ('<img src=x onerror=alert(1)>', "<script>alert(1)</script>", '<a href="&#106;avascript:x">',
                '<a href=" JaVa\tScRiPt:x">', '<img src="data:image/svg+xml,x">', '<p style="background:url(x)">',
                "<svg onload=x>", '<a href="vbscript:x">'):
        assert executable_parts(raw), raw


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_renders_with_nothing_executable(payload):
    rendered = render_markdown(payload)
    assert executable_parts(rendered) == [], rendered


@pytest.mark.django_db
@pytest.mark.parametrize("payload", [p for p in PAYLOADS if "[[" in p or "](" in p or "$" in p])
def test_payload_with_links_resolved_for_a_viewer_has_nothing_executable(payload, user):
    """The display pipeline adds real links for [[…]] after sanitising; that step must not reopen a hole."""
    from notes.selectors import render_markdown_for

    rendered = str(render_markdown_for(payload, viewer=user, author_id=user.pk))
    assert executable_parts(rendered) == [], rendered


@pytest.mark.django_db
def test_wikilink_labels_and_urls_are_escaped_when_resolved(user):
    """A run name is user text too: when a [[run:…]] link resolves, the run's name is escaped in the label."""
    from experiments import services
    from notes.selectors import render_markdown_for

    project = services.project_get_or_create(owner=user, name="p")
    run = services.run_create(owner=user, project=project, name='<img src=x onerror=alert(1)>"x', config={})
    rendered = str(render_markdown_for(f"[[run:{run.pk}]]", viewer=user, author_id=user.pk))
    assert executable_parts(rendered) == [] and "&lt;img" in rendered


# --- in a real browser ----------------------------------------------------------------------------------------------

WORST = [
    "<script>window.__xss=1;alert(1)</script>",
    "<img src=x onerror=\"window.__xss=1;alert(1)\">",
    "<svg onload=\"window.__xss=1\"><script>window.__xss=1</script></svg>",
    '<details open ontoggle="window.__xss=1;alert(1)"><summary>x</summary></details>',
    '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    "[click me](javascript:window.__xss=1)",
    "[click me](&#106;avascript:window.__xss=1)",
    "$$<img src=x onerror=window.__xss=1>$$",
    r"$\href{javascript:window.__xss=1}{click}$",
    '[[run:1"onmouseover="window.__xss=1]]',
    "x[^1]\n\n[^1]: <img src=x onerror=window.__xss=1>",
    '```js" onmouseover="window.__xss=1\ncode\n```',
    '<a href="#" onclick="window.__xss=1">a</a>\n\n<p style="background:url(javascript:window.__xss=1)">p</p>',
]


@pytest.mark.e2e
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_worst_payloads_do_nothing_in_a_real_browser_and_csp_forbids_inline_scripts(asgi_server, page_factory, user):
    from notes import services

    day = dt.date(2024, 5, 1)
    services.log_save(owner=user, date=day, body="\n\n".join(WORST))
    page = page_factory(asgi_server, user)
    dialogs: list[str] = []
    console: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console.append(m.text))

    response = page.goto(f"/logs/{day.isoformat()}/")
    assert response.status == 200
    csp = response.headers.get("content-security-policy", "")
    script_src = next((d.strip() for d in csp.split(";") if d.strip().startswith("script-src")), "")
    assert script_src and "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src, csp
    assert "object-src 'none'" in csp and "base-uri" in csp

    # Give handlers their chance: hover, click and focus every element the payloads produced, open the footnote.
    preview = page.locator(".notes-preview").first
    preview.wait_for()
    for el in preview.locator("a, img, span, p, details, code, sup").all()[:80]:
        try:
            el.hover(timeout=1000)
            if el.evaluate("e => e.tagName") == "A":
                el.evaluate("e => e.click()")
        except Exception:  # noqa: BLE001 - an element may be hidden or detached; the checks below decide
            pass
    page.goto(f"/logs/{day.isoformat()}/")  # a javascript: link click would have run by now; come back anyway
    assert page.evaluate("() => window.__xss") is None
    assert dialogs == []
    assert not [m for m in console if "__xss" in m]

    # Positive control: the dialog listener does see a dialog, and CSP blocks an injected inline script.
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__inline=1';"
                  " document.body.appendChild(s); }")
    assert page.evaluate("() => window.__inline") is None
    with page.expect_event("dialog"):
        page.evaluate("() => setTimeout(() => alert('control'), 0)")
    assert dialogs == ["control"]
