"""Readable generated run names such as "brave-otter" (friendlier than an id in lists and logs)."""

import secrets

ADJECTIVES = (
    "amber able bold brave bright brisk calm clever cosmic crimson curious daring eager electric fancy "
    "fearless gentle gifted golden grand happy hidden humble icy jolly keen kind lively lucky mellow "
    "merry mighty misty nimble noble olive patient proud quick quiet rapid rare rosy royal rustic "
    "scarlet sharp shiny silent silver smart snowy solar spry steady stellar sunny swift tidy tranquil "
    "upbeat vivid warm wise witty zealous"
).split()
ANIMALS = (
    "albatross alpaca badger beaver bison buffalo camel cheetah cobra condor coyote crane dingo dolphin "
    "eagle falcon ferret finch fox gazelle gecko gibbon heron hyena ibis jackal jaguar kestrel koala lemur "
    "leopard lion llama lynx marmot meerkat mink moose narwhal ocelot octopus orca otter owl panda "
    "panther parrot pelican penguin puma quail rabbit raven seal shark sloth stork tapir tiger toucan "
    "turtle walrus weasel whale wolf wombat yak zebra"
).split()


def generate_run_name() -> str:
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(ANIMALS)}"
