"""The Jinja2 environments of the reports: autoescaping on for HTML, off for Markdown, and in
each the filters that make dump text visible and inert."""

from __future__ import annotations

from iumdump.report.templating import html_environment, markdown_environment

HOSTILE = "<b>\"x\"</b>'\u202e\x07"


def render(environment, source: str, **values) -> str:
    return environment.from_string(source).render(**values)


def test_autoescaping_is_on_for_html_and_off_for_markdown():
    assert html_environment().autoescape is True
    assert markdown_environment().autoescape is False


def test_html_text_and_attribute_filters():
    page = render(html_environment(), '<p title="{{ name | attr }}">{{ name | text }}</p>',
                  name=HOSTILE)
    assert page == ('<p title="&lt;b&gt;&quot;x&quot;&lt;/b&gt;&#x27;\\u202e\\x07">'
                    "&lt;b&gt;\"x\"&lt;/b&gt;'\\u202e\\x07</p>")


def test_an_unfiltered_html_expression_is_still_visible_and_escaped():
    """A template that forgets |text still cannot emit markup or hide a bidi override."""
    page = render(html_environment(), '<p title="{{ name }}">{{ name }}</p>', name=HOSTILE)
    assert "<b>" not in page and "\u202e" not in page and "\x07" not in page
    assert page == ('<p title="&lt;b&gt;&#34;x&#34;&lt;/b&gt;&#39;\\u202e\\x07">'
                    "&lt;b&gt;&#34;x&#34;&lt;/b&gt;&#39;\\u202e\\x07</p>")


def test_markdown_filter_escapes_markdown_and_no_html_entities_appear_elsewhere():
    text = render(markdown_environment(), "| {{ name | md }} | {{ plain }} |",
                  name="a|b_*<x>\u202e", plain="0x16700000 & <ok>")
    # The visible escape's backslash is escaped too, so Markdown shows \u202e literally.
    assert text == "| a\\|b\\_\\*\\<x\\>\\\\u202e | 0x16700000 & <ok> |"
