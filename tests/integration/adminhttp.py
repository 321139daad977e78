"""Talking to respgate's admin endpoint from tests: HTTP calls, and a strict
reading of /metrics (Prometheus text format 0.0.4)."""
import json
import math
import re
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def admin_port(gate):
    with open(gate.config_path) as f:
        return int(json.load(f)["admin"]["listen"].rsplit(":", 1)[1])


def call(port, path, method="GET", token=None, timeout=10):
    """(status, body text, headers) of one request."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def get_json(port, path, method="GET", token=None):
    code, body, _ = call(port, path, method, token)
    return code, json.loads(body)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)')


def parse_metrics(text):
    """{(name, ((label, value), ...)): value}. Fails on anything the exposition
    format does not allow: what prometheus_client's parser rejects, samples
    before their family's TYPE or of another family, a series twice, histogram
    buckets that are not cumulative or disagree with _count."""
    list(text_string_to_metric_families(text))  # raises on malformed input
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, series, current = {}, {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert name not in types, "family %s declared twice" % name
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = kind
            current = name
            continue
        assert line and not line.startswith("#"), "stray line %r" % line
        m = SAMPLE.match(line)
        assert m, "malformed sample %r" % line
        name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
        family = name
        if types.get(current) == "histogram":
            family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert family == current, "sample %s outside its family (%s)" % (name, current)
        labels, pos = [], 0
        while pos < len(labels_text):
            lm = LABEL.match(labels_text, pos)
            assert lm, "malformed labels in %r" % line
            labels.append((lm.group(1), lm.group(2)))
            pos = lm.end()
        key = (name, tuple(sorted(labels)))
        assert key not in series, "series %r twice" % (key,)
        v = float(value)
        assert not math.isnan(v) or types[current] == "gauge", line
        if types[current] == "counter":
            assert v >= 0, "negative counter %r" % line
        series[key] = v
    for (name, labels), v in series.items():
        if not name.endswith("_count") or types.get(name[:-6]) != "histogram":
            continue
        base = name[:-6]
        buckets = sorted(((float(dict(k[1])["le"]), val) for k, val in series.items()
                          if k[0] == base + "_bucket" and
                          tuple(x for x in k[1] if x[0] != "le") == labels))
        assert buckets and buckets[-1][0] == math.inf, "%s%r has no +Inf bucket" % (base, labels)
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), "%s%r buckets not cumulative" % (base, labels)
        assert counts[-1] == v, "%s%r: +Inf bucket != _count" % (base, labels)
    return series


def value(series, name, **labels):
    return series.get((name, tuple(sorted(labels.items()))))


def total(series, name, **labels):
    """Sum of the series of name whose labels include the given ones."""
    want = set(labels.items())
    return sum(v for (n, l), v in series.items() if n == name and want <= set(l))
