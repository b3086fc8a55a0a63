#!/usr/bin/env python3
"""Writes the valid seed inputs of each fuzz target into Fuzz/corpus/<target>/seed-*: a few well-formed messages per
format (built with the bad-input corpus's own helpers, Tests/Fixtures/bad-input/generate.py), the Jomablue payloads
of the bad-input corpus's envelopes, configuration files, and requests of AWS's SigV4 test suite. The bad-input cases
themselves are not copied: scripts/fuzz.sh passes their folders to libFuzzer as extra seed folders. Crash inputs that
were found and fixed live beside these as crash-*; this script leaves them alone.

Run it again after changing generate.py: python3 Fuzz/make-seeds.py
"""
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAD_INPUT = os.path.join(ROOT, "Tests", "Fixtures", "bad-input")
sys.dont_write_bytecode = True  # no __pycache__ in the fixtures folder
sys.path.insert(0, BAD_INPUT)
import generate as bad  # noqa: E402  (its cases are built at import; nothing is written unless main() runs)

CORPUS = os.path.join(ROOT, "Fuzz", "corpus")
SEEDS = {}


def seed(target, name, data):
    if not isinstance(data, bytes):
        data = data.encode("utf-8")
    SEEDS.setdefault(target, []).append((name, data))


dumps = bad.dumps

# The default format.
seed("FuzzDefaultFormat", "registration", dumps(bad.event(type="USER_REGISTRATION", properties={
    "firstName": "Ana", "lastName": "Silva", "email": "ana@example.com", "address": {"city": "Porto", "tags": ["a", 1, True, None]}})))
seed("FuzzDefaultFormat", "update", dumps(bad.event(properties={"bio": "x\u00e9\u4e2d\U0001F600", "n": 1.5e3})))
seed("FuzzDefaultFormat", "deposit", dumps(bad.deposit()))
seed("FuzzDefaultFormat", "withdrawal", dumps(bad.deposit(type="WITHDRAWAL_REQUESTED", amount="0.001", paymentType="card", vendor="v")))
seed("FuzzDefaultFormat", "consent", dumps(bad.consent()))

# A custom converter: the first line is the event-name header.
seed("FuzzCustomFormat", "signup", "signup\n" + dumps({"user": {"id": "u-1", "email": "a@example.com", "address": {"country": "PT"}}}))
seed("FuzzCustomFormat", "payment", "payment\n" + dumps({"uid": "u-1", "at": "2026-05-12T10:00:00Z", "payment": {"amount": "12.50", "id": "p-1"}}))
seed("FuzzCustomFormat", "consent", "consent\n" + dumps({"uid": "u-1", "channel": "SMS", "consented": False}))
seed("FuzzCustomFormat", "unknown", "refund\n" + dumps({"uid": "u-1"}))

# Proca.
seed("FuzzProcaFormat", "action", dumps(bad.proca_action()))
seed("FuzzProcaFormat", "action-no-consent", dumps(bad.proca_action(privacy__withConsent=False, privacy__optIn=False)))
seed("FuzzProcaFormat", "action-confirm", dumps(bad.proca_action(stage="confirm", action__actionType="share")))

# Jomablue: the payloads inside SNS envelopes, as the SQS source hands them on.
seed("FuzzJomablueFormat", "person", dumps(bad.person()))
seed("FuzzJomablueFormat", "person-cancelled", dumps(bad.person(data__cancelled=True, data__checked_in=False)))
for path in sorted(glob.glob(os.path.join(BAD_INPUT, "jomablue", "*.json"))):
    try:
        message = json.loads(open(path, "rb").read()).get("Message")
    except ValueError:
        continue
    if isinstance(message, str):
        seed("FuzzJomablueFormat", "bad-" + os.path.basename(path)[:-5], message)

# Altcraft's profile import.
seed("FuzzAltcraftImportFormat", "import", dumps(bad.altcraft()))
seed("FuzzAltcraftImportFormat", "import-phone", dumps(bad.altcraft(matching="phone", phone="+79001234567", update_only=True, skip_triggers=True)))
seed("FuzzAltcraftImportFormat", "import-profile-id", dumps(bad.altcraft(matching="profile_id", profile_id="p-1", email=bad.DROP)))

# HTTP integrations: shop orders and Synerise-style bodies.
seed("FuzzHTTPIntegration", "order", dumps({"customer_email": "a@example.com", "order_number": "111111111", "type": "email",
                                             "products": [{"name": "Earwax", "category": "Hygiene", "id": "abc"}]}))
seed("FuzzHTTPIntegration", "synerise", dumps({"action": "goal.achieve", "label": "goal.achieve",
                                                "client": {"customId": "c-1", "email": "a@example.com"},
                                                "params": {"created_at": "2021-04-28T14:09:27.000Z", "group_id": "g"}}))

# JSON flattening.
seed("FuzzJSONFlattening", "nested", dumps({"a": {"b": [1, {"c": None}, [], {}], "d": "e\u0001\"\\"}, "f": -0.0, "g": 1e-7}))
seed("FuzzJSONFlattening", "scalars", b'[true,false,null,0,-1.25E+3,"\\u00e9\\ud83d\\ude00"]')

# SNS envelopes.
good = dumps(bad.event(properties={"firstName": "Ana"}))
seed("FuzzSNSUnwrap", "notification", dumps(bad.envelope(good)))
seed("FuzzSNSUnwrap", "notification-attributes", dumps(bad.envelope(good, Subject="s", MessageAttributes={
    "event": {"Type": "String", "Value": "signup"}, "amount": {"Type": "Number", "Value": "12.5"},
    "region": {"Type": "String.Array", "Value": "[\"eu\",\"us\"]"}, "blob": {"Type": "Binary", "Value": "AAEC"}})))
seed("FuzzSNSUnwrap", "raw", good)

# SNS filter policies: the policy, a newline, the message.
seed("FuzzSNSFilterPolicy", "prefix", '{"event":["signup",{"prefix":"user."}]}\n{"event":"user.created"}')
seed("FuzzSNSFilterPolicy", "numeric", '{"amount":[{"numeric":[">",0,"<=",1000]}],"region":[{"anything-but":["cn"]}]}\n{"amount":12.5,"region":["eu","us"]}')
seed("FuzzSNSFilterPolicy", "nested", '{"properties":{"country":[{"exists":true}],"email":[{"equals-ignore-case":"A@B.C"}]}}\n{"properties":{"country":"PT","email":"a@b.c"}}')
seed("FuzzSNSFilterPolicy", "or", '{"$or":[{"a":[{"suffix":"x"}]},{"b":[{"cidr":"10.0.0.0/24"}]}],"c":[{"wildcard":"*.png"}]}\n{"a":"yx","b":"10.0.0.7","c":"a.png"}')
seed("FuzzSNSFilterPolicy", "attributes", '{"kind":[{"anything-but":{"prefix":"test"}}],"n":[{"numeric":["=",3]}]}\n{"kind":{"Type":"String","Value":"live"},"n":{"Type":"Number","Value":"3"}}')

# The configuration parser.
for name, path in [("default", "Sources/CRMIngest/Defaults/crm-ingest.yaml"), ("shipped", "Config/crm-ingest.yaml"),
                   ("bad-input", "Tests/Fixtures/bad-input/crm-ingest.yaml")]:
    seed("FuzzConfigParser", name, open(os.path.join(ROOT, path), "rb").read())
fuzz_configuration = open(os.path.join(ROOT, "Fuzz/Sources/FuzzConfiguration/FuzzConfiguration.swift")).read()
yaml = fuzz_configuration.split('"""\n', 1)[1].split('        """', 1)[0]
seed("FuzzConfigParser", "fuzz-configuration", "\n".join(line[8:] for line in yaml.split("\n")))

# SigV4: AWS's test requests as method, path and query, headers (one a line).
for case in ["get-vanilla-query-order-key-case", "get-header-value-trim", "get-header-value-multiline", "get-header-key-duplicate",
             "get-relative-relative-normalized", "get-slash-dot-slash-normalized", "get-utf8", "get-space-normalized",
             "post-x-www-form-urlencoded", "get-vanilla-query-unreserved"]:
    path = os.path.join(ROOT, "Tests/Fixtures/sigv4/v4", case, "request.txt")
    if not os.path.exists(path):
        continue
    lines = open(path, encoding="utf-8").read().split("\n")
    method, _, rest = lines[0].partition(" ")
    target = rest.rsplit(" HTTP/", 1)[0]
    headers = [line for line in lines[1:] if line.strip()]
    seed("FuzzSigV4Canonicalizer", case, "\n".join([method, target] + headers))


def main():
    for target, seeds in SEEDS.items():
        folder = os.path.join(CORPUS, target)
        os.makedirs(folder, exist_ok=True)
        for old in glob.glob(os.path.join(folder, "seed-*")):
            os.remove(old)
        for name, data in seeds:
            with open(os.path.join(folder, "seed-" + name), "wb") as out:
                out.write(data)
    print("%d seeds: %s" % (sum(map(len, SEEDS.values())), ", ".join("%s %d" % (t, len(s)) for t, s in SEEDS.items())))


if __name__ == "__main__":
    main()
