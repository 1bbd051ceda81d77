"""Where cities run on a multi-node engine: node labels, the `swarm.placement` map, placement constraints.

A city runs on the nodes labelled `io.sensor-manager.city.<City>=true` (safe city name), or on the one
node `swarm.placement` names for it. One key per city, not one key holding the city: a node label key
has one value and Swarm constraints are exact matches joined by AND, so only a key per city lets one
node host several cities. Reading nodes needs a swarm manager; nothing here changes a node except
`label_node`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fleetcore.errors import EngineUnavailableError, UsageError
from fleetcore.naming import safe_city_name
from sensor_manager.runtimes.swarm_settings import SwarmSettings

CITY_LABEL_PREFIX = "io.sensor-manager.city."
INIT_HINT = "run `docker swarm init --advertise-addr ADDR` on this engine (or point DOCKER_HOST at a swarm manager)"


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    role: str  # manager | worker
    state: str  # ready | down | …
    availability: str  # active | pause | drain
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def is_eligible(self) -> bool:
        """May the scheduler place new tasks here?"""
        return self.state == "ready" and self.availability == "active"

    @property
    def labelled_cities(self) -> list[str]:
        """Safe city names this node is labelled for."""
        return sorted(key.removeprefix(CITY_LABEL_PREFIX) for key, value in self.labels.items()
                      if key.startswith(CITY_LABEL_PREFIX) and value == "true")


def city_label(safe_city: str) -> str:
    return f"{CITY_LABEL_PREFIX}{safe_city}"


def placement_map(settings: SwarmSettings) -> dict[str, str]:
    """`swarm.placement` keyed by safe city name (the config may use display names)."""
    return {safe_city_name(city): hostname for city, hostname in settings.placement.items()}


def constraints(safe_city: str, settings: SwarmSettings) -> list[str]:
    """The Swarm placement constraints of a city's services."""
    hostname = placement_map(settings).get(safe_city)
    if hostname:
        return [f"node.hostname=={hostname}"]
    return [f"node.labels.{city_label(safe_city)}==true"]


def require_manager(client) -> None:
    """Raise EngineUnavailableError (exit 3) unless the engine is a swarm manager."""
    swarm = client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active":
        raise EngineUnavailableError(f"this Docker engine is not part of a swarm; {INIT_HINT}")
    if not swarm.get("ControlAvailable"):
        raise EngineUnavailableError(f"this Docker engine is a swarm worker, not a manager; {INIT_HINT}")


def read_nodes(client) -> list[Node]:
    """The swarm's nodes, by hostname."""
    require_manager(client)
    nodes = []
    for raw in client.api.nodes():
        spec, status = raw.get("Spec", {}), raw.get("Status", {})
        nodes.append(Node(raw["ID"], raw.get("Description", {}).get("Hostname", ""), spec.get("Role", ""),
                          status.get("State", ""), spec.get("Availability", ""), dict(spec.get("Labels") or {})))
    return sorted(nodes, key=lambda n: n.hostname)


def eligible_nodes(safe_city: str, nodes: list[Node], settings: SwarmSettings) -> list[str]:
    """Hostnames the city's services may be scheduled on now."""
    hostname = placement_map(settings).get(safe_city)
    return [n.hostname for n in nodes if n.is_eligible
            and (n.hostname == hostname if hostname else safe_city in n.labelled_cities)]


def placement(cities: list[str], nodes: list[Node], settings: SwarmSettings) -> dict[str, list[str]]:
    """Safe city name -> the hostnames it would land on (empty: nowhere)."""
    return {city: eligible_nodes(city, nodes, settings) for city in cities}


def placement_problems(cities: list[str], nodes: list[Node], settings: SwarmSettings) -> list[str]:
    """One line per city no node can take, naming the remedy."""
    by_hostname = placement_map(settings)
    problems = []
    for city, hosts in placement(cities, nodes, settings).items():
        if hosts:
            continue
        if city in by_hostname:
            problems.append(f"{city}: swarm.placement names node {by_hostname[city]!r}, which is not a ready, active node of this swarm"
                            " (see `./sensor_manager.py nodes`)")
        else:
            problems.append(f"{city}: no ready, active node is labelled for it; run `./sensor_manager.py nodes label NODE --city {city}`"
                            f" or set swarm.placement.{city}: NODE")
    return problems


def find_node(nodes: list[Node], name: str) -> Node:
    """A node by hostname or id (a unique id prefix too)."""
    matches = [n for n in nodes if name in (n.hostname, n.id)] or [n for n in nodes if n.id.startswith(name)]
    if len(matches) != 1:
        known = ", ".join(n.hostname for n in nodes) or "none"
        what = "matches several nodes" if matches else "is not a node of this swarm"
        raise UsageError(f"NODE {name!r} {what} (nodes: {known})")
    return matches[0]


def label_node(client, name: str, cities: list[str], *, remove: bool = False) -> Node:
    """Add (or remove) the city labels of a node; returns the node as it is now."""
    if not cities:
        raise UsageError("--city: name at least one city")
    node = find_node(read_nodes(client), name)
    raw = client.api.inspect_node(node.id)
    spec = raw["Spec"]
    labels = dict(spec.get("Labels") or {})
    for city in cities:
        key = city_label(safe_city_name(city))
        if remove:
            labels.pop(key, None)
        else:
            labels[key] = "true"
    client.api.update_node(node.id, raw["Version"]["Index"], {**spec, "Labels": labels})
    return find_node(read_nodes(client), node.id)


@dataclass(frozen=True)
class NodesReport:
    """What `nodes` shows: every node with its city labels, and where each planned city would land."""

    nodes: list[Node]
    placement: dict[str, list[str]]  # safe city name -> hostnames (empty: nowhere)

    def to_dict(self) -> dict:
        return {"nodes": [{"id": n.id, "hostname": n.hostname, "role": n.role, "state": n.state, "availability": n.availability,
                           "labels": n.labels, "cities": [c for c, hosts in self.placement.items() if n.hostname in hosts]}
                          for n in self.nodes],
                "placement": self.placement}


def nodes_report(layout, config) -> NodesReport:
    """The swarm's nodes and where the cities of the plan (stored, else the config's) would run."""
    from sensor_manager.plan import resolve_plan
    from sensor_manager.runtimes.engine import docker_client

    nodes = read_nodes(docker_client())
    plan = resolve_plan(config, layout, persist=False)
    return NodesReport(nodes, placement(list(plan.cities), nodes, config.swarm))
