"""Client kind from the User-Agent: the demo incident's agents and common tools."""

from __future__ import annotations

import pytest

from forensics.enrich.useragent import CLIENT_RULES, classify, classify_many


@pytest.mark.parametrize(
    ("user_agent", "kind", "name"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/107.0.0.0 Safari/537.36", "browser", None),
        ("Mozilla/5.0 (Windows NT 10.0; rv:102.0) Gecko/20100101 Firefox/102.0", "browser", None),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 16_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.30(0x18001e2f) NetType/4G Language/zh_CN", "browser", None),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler", "googlebot"),
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/103.0.5060.134 Safari/537.36", "crawler", "bingbot"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)", "crawler", "applebot"),
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)", "crawler", "gptbot"),
        ("CCBot/2.0 (https://commoncrawl.org/faq/)", "crawler", "ccbot"),
        ("Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)", "crawler", "semrushbot"),
        ("Mozilla/5.0 (compatible; archive.org_bot +http://archive.org/details/archive.org_bot)", "crawler", "archive.org_bot"),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "link_preview", "slackbot"),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "link_preview", "facebookexternalhit"),
        ("Twitterbot/1.0", "link_preview", "twitterbot"),
        ("WhatsApp/2.22.24.81 A", "link_preview", "whatsapp"),
        ("curl/7.86.0", "tool", "curl"),
        ("Wget/1.21.2", "tool", "wget"),
        ("aria2/1.36.0", "tool", "aria2"),
        ("python-requests/2.28.1", "tool", "python-requests"),
        ("Python-urllib/3.11", "tool", "python-urllib"),
        ("Go-http-client/1.1", "tool", "go-http-client"),
        ("Java/1.8.0_352", "tool", "java"),
        ("Apache-HttpClient/4.5.13 (Java/11.0.16)", "tool", "java"),
        ("okhttp/4.10.0", "tool", "okhttp"),
        ("Mozilla/5.0 zgrab/0.x", "tool", "zgrab"),
        ("", "empty", None),
        ("-", "empty", None),
        (None, "empty", None),
        ("SomethingElse 1.0", "unknown", None),
    ],
)
def test_classify(user_agent, kind, name):
    got = classify(user_agent)
    assert (got.kind, got.name) == (kind, name)


def test_crawlers_with_published_lists_name_their_owner():
    owners = {r.name: r.owner for r in CLIENT_RULES if r.owner}
    assert owners["googlebot"] == "google" and owners["bingbot"] == "bing" and owners["gptbot"] == "openai"
    assert owners["applebot"] == "apple" and owners["ccbot"] == "commoncrawl"


def test_most_telling_kind_of_several():
    best, kinds = classify_many(["Mozilla/5.0 (X11; Linux x86_64; rv:107.0) Gecko/20100101 Firefox/107.0", "curl/7.86.0"])
    assert (best.kind, best.name) == ("tool", "curl") and len(kinds) == 2
    assert classify_many([])[0].kind == "empty"
