"""What kind of client a User-Agent declares: a browser, a crawler (which one), a link preview bot,
a command-line tool or HTTP library, or nothing (empty) / something unknown.

A User-Agent is a claim made by the client. A crawler claim is `verified` only when the address is
in that crawler's owner's published ranges (lists.py), or, when asked, its reverse DNS name is
forward-confirmed under the owner's domain (rdns.py); otherwise it is `claimed`.

CLIENT_RULES is data: one row per client, first match wins, so more specific rows come first
(a link expander that says "Mozilla/5.0 (compatible; ...)" before the browser row).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

BROWSER = "browser"
CRAWLER = "crawler"
LINK_PREVIEW = "link_preview"
TOOL = "tool"
EMPTY = "empty"
UNKNOWN = "unknown"

# When one address sent several user agents, the most telling kind describes it.
KIND_ORDER = (CRAWLER, LINK_PREVIEW, TOOL, BROWSER, UNKNOWN, EMPTY)


@dataclass(frozen=True)
class ClientRule:
    kind: str
    name: str
    pattern: str  # searched case-insensitively
    owner: str | None = None  # whose published list / rDNS domain verifies it (lists.ListFormat.owner)


CLIENT_RULES: tuple[ClientRule, ...] = (
    # Link preview bots: fetch a link someone pasted into a chat or a post.
    ClientRule(LINK_PREVIEW, "slackbot", r"Slackbot|Slack-ImgProxy"),
    ClientRule(LINK_PREVIEW, "twitterbot", r"Twitterbot"),
    ClientRule(LINK_PREVIEW, "facebookexternalhit", r"facebookexternalhit|facebookcatalog|meta-externalagent"),
    ClientRule(LINK_PREVIEW, "linkedinbot", r"LinkedInBot"),
    ClientRule(LINK_PREVIEW, "whatsapp", r"WhatsApp/"),
    ClientRule(LINK_PREVIEW, "telegrambot", r"TelegramBot"),
    ClientRule(LINK_PREVIEW, "discordbot", r"Discordbot"),
    ClientRule(LINK_PREVIEW, "skype", r"SkypeUriPreview"),
    ClientRule(LINK_PREVIEW, "microsoftpreview", r"MicrosoftPreview"),
    ClientRule(LINK_PREVIEW, "redditbot", r"redditbot"),
    ClientRule(LINK_PREVIEW, "embedly", r"Embedly"),
    ClientRule(LINK_PREVIEW, "iframely", r"Iframely"),
    # Search, AI and archive crawlers.
    ClientRule(CRAWLER, "googlebot", r"Googlebot|Google-InspectionTool|Storebot-Google|GoogleOther|"
               r"AdsBot-Google|Mediapartners-Google|APIs-Google|FeedFetcher-Google|Google-Read-Aloud", "google"),
    ClientRule(CRAWLER, "bingbot", r"bingbot|BingPreview|msnbot|adidxbot", "bing"),
    ClientRule(CRAWLER, "applebot", r"Applebot", "apple"),
    ClientRule(CRAWLER, "gptbot", r"GPTBot", "openai"),
    ClientRule(CRAWLER, "oai-searchbot", r"OAI-SearchBot", "openai"),
    ClientRule(CRAWLER, "chatgpt-user", r"ChatGPT-User", "openai"),
    ClientRule(CRAWLER, "ccbot", r"CCBot", "commoncrawl"),
    ClientRule(CRAWLER, "claudebot", r"ClaudeBot|Claude-User|Claude-SearchBot|anthropic-ai"),
    ClientRule(CRAWLER, "perplexitybot", r"PerplexityBot|Perplexity-User"),
    ClientRule(CRAWLER, "yandexbot", r"YandexBot|YandexImages|YandexMobileBot|YandexAccessibilityBot", "yandex"),
    ClientRule(CRAWLER, "baiduspider", r"Baiduspider", "baidu"),
    ClientRule(CRAWLER, "duckduckbot", r"DuckDuckBot|DuckAssistBot"),
    ClientRule(CRAWLER, "petalbot", r"PetalBot"),
    ClientRule(CRAWLER, "bytespider", r"Bytespider"),
    ClientRule(CRAWLER, "amazonbot", r"Amazonbot"),
    ClientRule(CRAWLER, "semrushbot", r"SemrushBot"),
    ClientRule(CRAWLER, "ahrefsbot", r"AhrefsBot"),
    ClientRule(CRAWLER, "mj12bot", r"MJ12bot"),
    ClientRule(CRAWLER, "dotbot", r"DotBot"),
    ClientRule(CRAWLER, "archive.org_bot", r"archive\.org_bot|ia_archiver|Wayback"),
    ClientRule(CRAWLER, "seznambot", r"SeznamBot"),
    # Command-line tools, HTTP libraries and scanners.
    ClientRule(TOOL, "curl", r"^curl/|\bcurl/"),
    ClientRule(TOOL, "wget", r"^Wget/|Wget2?/"),
    ClientRule(TOOL, "aria2", r"^aria2/"),
    ClientRule(TOOL, "httpie", r"^HTTPie/"),
    ClientRule(TOOL, "powershell", r"WindowsPowerShell|PowerShell/"),
    ClientRule(TOOL, "python-requests", r"python-requests/"),
    ClientRule(TOOL, "python-urllib", r"Python-urllib/"),
    ClientRule(TOOL, "python-httpx", r"python-httpx/"),
    ClientRule(TOOL, "aiohttp", r"aiohttp/"),
    ClientRule(TOOL, "scrapy", r"Scrapy/"),
    ClientRule(TOOL, "go-http-client", r"Go-http-client/"),
    ClientRule(TOOL, "java", r"^Java/|Apache-HttpClient/|Jakarta Commons-HttpClient"),
    ClientRule(TOOL, "okhttp", r"okhttp/"),
    ClientRule(TOOL, "libwww-perl", r"libwww-perl/|lwp-request"),
    ClientRule(TOOL, "node", r"node-fetch/|axios/|undici|got \(https://github\.com/sindresorhus/got\)"),
    ClientRule(TOOL, "ruby", r"^Ruby$|Faraday v"),
    ClientRule(TOOL, "php", r"GuzzleHttp/|^PHP/"),
    ClientRule(TOOL, "postman", r"PostmanRuntime/"),
    ClientRule(TOOL, "headless-chrome", r"HeadlessChrome"),
    ClientRule(TOOL, "zgrab", r"zgrab"),
    ClientRule(TOOL, "masscan", r"masscan"),
    ClientRule(TOOL, "scanner", r"CensysInspect|Expanse|Nmap Scripting Engine|Nuclei|nikto|sqlmap"),
    ClientRule(TOOL, "elb-healthchecker", r"ELB-HealthChecker"),
    # Browsers: Mozilla/5.0 with a platform and an engine token. Generic "bot" words after them.
    ClientRule(CRAWLER, "unnamed-bot", r"bot\b|crawler|spider|\+https?://"),
    ClientRule(BROWSER, "browser", r"^Mozilla/5\.0 \(.*\) (AppleWebKit|Gecko)/|^Opera/"),
)
_COMPILED = tuple((rule, re.compile(rule.pattern, re.IGNORECASE)) for rule in CLIENT_RULES)
CRAWLER_OWNERS = {rule.name: rule.owner for rule in CLIENT_RULES if rule.kind == CRAWLER}


@dataclass(frozen=True)
class ClientKind:
    kind: str
    name: str | None  # which crawler / tool / preview bot
    owner: str | None = None


@functools.lru_cache(maxsize=1 << 16)
def classify(user_agent: str | None) -> ClientKind:
    """The kind of client one User-Agent string declares. Cached: a case with a million
    addresses has far fewer distinct agents, and each is matched against every rule once."""
    text = (user_agent or "").strip()
    if text in ("", "-"):
        return ClientKind(EMPTY, None)
    for rule, regex in _COMPILED:
        if regex.search(text):
            return ClientKind(rule.kind, None if rule.kind == BROWSER else rule.name, rule.owner)
    return ClientKind(UNKNOWN, None)


_KIND_RANK = {kind: rank for rank, kind in enumerate(KIND_ORDER)}


def _rank(kind: ClientKind) -> int:
    return _KIND_RANK[kind.kind]


def classify_many(user_agents: Iterable[str | None]) -> tuple[ClientKind, list[ClientKind]]:
    """The most telling kind among an address's user agents (KIND_ORDER; the first of them on a
    tie), and all of them."""
    kinds = list(map(classify, user_agents)) or [ClientKind(EMPTY, None)]
    return min(kinds, key=_rank), kinds
