"""citygate-ingest's NGSI-LD entities against the FIWARE Smart Data Models' JSON schemas, offline.

Readings of each kind (AirQualityObserved, TrafficFlowObserved, ParkingSpot) are built with the
generated Python modules, mapped by the real binary (`citygate-ingest --map FILE`), checked to be
normalized NGSI-LD (every attribute a Property, GeoProperty or Relationship, the @context with the
data model's context and the core context), then unwrapped to the key-values form the schemas
describe and validated with Debian's python3-jsonschema. Every $ref is resolved from
tests/data/fiware; a network fetch would raise.

Environment: CITYGATE_BUILD_DIR (default build/default).
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CITYGATE_BUILD_DIR", REPO / "build" / "default")).resolve()
FIWARE = REPO / "tests" / "data" / "fiware"
sys.path.insert(0, str(BUILD / "python"))

from citygate.v1 import reading_pb2  # noqa: E402  (generated)
import jsonschema  # noqa: E402  (Debian: python3-jsonschema)
from jsonschema import Draft202012Validator, RefResolver  # noqa: E402

STORE = {
    "https://smart-data-models.github.io/data-models/common-schema.json":
        json.loads((FIWARE / "common" / "common-schema.json").read_text()),
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/Environment-schema.json":
        json.loads((FIWARE / "AirQualityObserved" / "Environment-schema.json").read_text()),
}
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
DOMAIN = {"AirQualityObserved": "Environment", "TrafficFlowObserved": "Transportation", "ParkingSpot": "Parking"}


def no_network(uri):
    raise AssertionError(f"the schemas wanted {uri}, which is not in tests/data/fiware")


def validator(entity_type):
    schema = json.loads((FIWARE / entity_type / "schema.json").read_text())
    resolver = RefResolver.from_schema(schema, store=STORE, handlers={"http": no_network, "https": no_network})
    return Draft202012Validator(schema, resolver=resolver, format_checker=jsonschema.FormatChecker())


def key_values(entity):
    """Normalized NGSI-LD to key-values: each Property/GeoProperty to its value, Relationship to its object."""
    out = {}
    for k, v in entity.items():
        if k in ("id", "type", "@context"):
            out[k] = v
        elif v["type"] in ("Property", "GeoProperty"):
            value = v["value"]
            out[k] = value["@value"] if isinstance(value, dict) and "@value" in value else value
        elif v["type"] == "Relationship":
            out[k] = v["object"]
        else:
            raise AssertionError(f"{k}: not a Property, GeoProperty or Relationship: {v}")
    return out


def measurement(m, value, unit, quality=reading_pb2.GOOD):
    m.value = value
    m.unit_code = unit
    m.quality = quality


def batch():
    b = reading_pb2.ReadingBatch(gateway_id="gw-fiware", boot_id="b", epoch="e" * 16)
    t0 = 1764686400
    for i, humidity in enumerate((0.54, 0.999, 0.0)):
        r = b.readings.add(seq=i + 1, sensor_id=f"aq-{i}")
        r.observed_at.seconds = t0 + i
        a = r.air_quality_observed
        a.id = f"urn:ngsi-ld:AirQualityObserved:aq-{i}"
        a.date_observed.seconds = t0 + i
        a.date_observed.nanos = 250000000 * i
        a.location.lat, a.location.lon = 47.0502, 8.3093
        for name, v, unit in (("no2", 28.400000000000002, "GQ"), ("o3", 61.2, "GQ"), ("co", 0.41, "GP"),
                              ("co2", 412.0, "GQ"), ("pm25", 7.3, "GQ"), ("pm10", 12.9, "GQ"), ("pm1", 3.1, "GQ"),
                              ("pm4", 9.0, "GQ"), ("temperature", -3.4, "CEL"), ("pressure", 1013.2, "A97"),
                              ("wind_speed", 3.4, "MTS"), ("so2", 1.5, "GQ"), ("no", 4.0, "GQ"),
                              ("nox", 33.0, "GQ"), ("sh2", 0.2, "GQ"), ("volatile_organic_compounds_total", 120, "GQ")):
            measurement(getattr(a, name), v, unit)
        measurement(a.relative_humidity, humidity, "C62")
        measurement(a.wind_direction, (0, 181.5, 359.9)[i], "DD")
    for i, (direction, vtype) in enumerate(((reading_pb2.FORWARD, "car"), (reading_pb2.BACKWARD, "lorry"),
                                            (reading_pb2.LANE_DIRECTION_UNSPECIFIED, ""))):
        r = b.readings.add(seq=10 + i, sensor_id="tc-1")
        r.observed_at.seconds = t0 + 60
        t = r.traffic_flow_observed
        t.id = f"urn:ngsi-ld:TrafficFlowObserved:tc-1:lane{i + 1}"
        t.date_observed_from.seconds = t0
        t.date_observed_to.seconds = t0 + 60
        t.location.lat, t.location.lon = 47.05, 8.31
        t.lane_id = i + 1
        t.lane_direction = direction
        t.congested = i == 1
        t.vehicle_type = vtype
        measurement(t.intensity, 17 + i, "H87")
        measurement(t.occupancy, 0.12345, "C62")
        measurement(t.average_vehicle_speed, 48.300000000000004, "KMH")
        measurement(t.average_vehicle_length, 4.5, "MTR")
        measurement(t.average_headway_time, 2.25, "SEC")
        measurement(t.average_gap_distance, 12.0, "MTR")
    for i, status in enumerate((reading_pb2.FREE, reading_pb2.OCCUPIED, reading_pb2.CLOSED, reading_pb2.UNKNOWN,
                                reading_pb2.PARKING_STATUS_UNSPECIFIED)):
        r = b.readings.add(seq=20 + i, sensor_id="ps-1")
        r.observed_at.seconds = t0 + 120
        p = r.parking_spot
        p.id = f"urn:ngsi-ld:ParkingSpot:ps-1:bay{i}"
        p.status = status
        p.status_changed_at.seconds = t0 + 100
        p.category.append("onStreet")
        p.ref_parking_site = "urn:ngsi-ld:ParkingSite:main-street"
        p.location.lat, p.location.lon = 47.05, 8.31
        p.bay = f"bay{i}"
        measurement(p.battery_voltage, 3.61, "VLT")
    g = b.readings.add(seq=30, sensor_id="ctl-1")  # no FIWARE model: no entity
    g.generic.values["period"].value = 60
    return b


class FiwareSchemas(unittest.TestCase):
    def entities(self):
        with tempfile.NamedTemporaryFile(suffix=".pb") as f:
            f.write(batch().SerializeToString())
            f.flush()
            out = subprocess.run([str(BUILD / "bin" / "citygate-ingest"), "--map", f.name], capture_output=True,
                                 text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return [json.loads(line) for line in out.stdout.splitlines()]

    def test_every_entity_is_normalized_ngsi_ld_and_valid_for_its_schema(self):
        entities = self.entities()
        self.assertEqual([e["type"] for e in entities],
                         ["AirQualityObserved"] * 3 + ["TrafficFlowObserved"] * 3 + ["ParkingSpot"] * 5)
        validators = {t: validator(t) for t in DOMAIN}
        for e in entities:
            with self.subTest(id=e["id"]):
                self.assertTrue(e["id"].startswith(f"urn:ngsi-ld:{e['type']}:"))
                self.assertEqual(e["@context"], [
                    f"https://raw.githubusercontent.com/smart-data-models/dataModel.{DOMAIN[e['type']]}/master/context.jsonld",
                    CORE])
                self.assertEqual(e["location"]["type"], "GeoProperty")
                self.assertEqual(e["location"]["value"]["type"], "Point")
                for k, v in e.items():
                    if isinstance(v, dict) and "unitCode" in v:
                        self.assertIn("observedAt", v, k)  # a measurement says when
                errors = sorted(validators[e["type"]].iter_errors(key_values(e)), key=lambda x: list(x.path))
                self.assertEqual([f"{list(x.path)}: {x.message}" for x in errors], [])

    def test_values_as_the_schemas_want_them(self):
        aq, _, aq3, tf, tf2, _, free, occupied, closed, unknown, unspecified = self.entities()
        self.assertEqual(aq["no2"]["value"], 28.4)
        self.assertIsInstance(tf["intensity"]["value"], int)
        self.assertEqual(tf["averageVehicleSpeed"]["value"], 48.3)
        self.assertEqual(aq3["windDirection"]["value"], -0.1)
        self.assertEqual(aq3["dateObserved"]["value"], "2025-12-02T14:40:02.500Z")
        self.assertEqual(tf2["congested"]["value"], True)
        self.assertEqual([p["status"]["value"] for p in (free, occupied, closed, unknown, unspecified)],
                         ["free", "occupied", "closed", "unknown", "unknown"])

    def test_the_check_catches_what_is_wrong(self):
        # The validator is not a rubber stamp: the upstream key-values examples pass, and an entity
        # with a status outside FIWARE's enum or a humidity in percent fails.
        for t in DOMAIN:
            validator(t).validate(json.loads((FIWARE / t / "example.jsonld").read_text()))
        entities = self.entities()
        spot = key_values(entities[6])
        spot["status"] = "FREE"
        self.assertTrue(list(validator("ParkingSpot").iter_errors(spot)))
        air = key_values(entities[0])
        air["relativeHumidity"] = 54
        self.assertTrue(list(validator("AirQualityObserved").iter_errors(air)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
