"""`orchestrator block ls|inspect|delete|type ls|rotate-key`: the named configurations flows load (secrets masked).

`rotate-key` works on this machine's database and key file (it re-encrypts every document), so it runs where the
server runs, not through the API.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.core.errors import OrchestratorError
from apps.core.management.base import OneLineErrorParser, OrchestratorCommand
from orchestrator.client import OrchestratorClient, get_client


def block_slug(value: str) -> tuple[str, str]:
    """`TYPE/NAME` as (type, name); a CommandError saying the form otherwise."""
    block_type, slash, name = value.partition("/")
    if not slash or not block_type or not name:
        raise CommandError(f"{value!r} is not TYPE/NAME, e.g. secret/db-password")
    return block_type, name


def data_summary(data: dict[str, Any], width: int = 60) -> str:
    """The data on one line, cut to `width` characters (secrets are already masked)."""
    text = json.dumps(data, separators=(", ", ": "))
    return text if len(text) <= width else text[: width - 1] + "…"


class Command(OrchestratorCommand):
    help = "List, inspect and delete blocks (typed configurations with encrypted secrets); list block types."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{ls,inspect,delete,type,rotate-key}"
        )
        ls = actions.add_parser("ls", help="list blocks: type, name, data (secrets masked)")
        ls.add_argument("--type", dest="block_type", metavar="SLUG", help="only blocks of this type")
        inspect = actions.add_parser("inspect", help="show a block (secrets masked)")
        inspect.add_argument("slug", metavar="TYPE/NAME")
        delete = actions.add_parser("delete", help="delete a block (refused while a deployment uses it)")
        delete.add_argument("slug", metavar="TYPE/NAME")
        types = actions.add_parser("type", help="block types: `block type ls`")
        type_actions = types.add_subparsers(
            dest="type_action", required=True, parser_class=OneLineErrorParser, metavar="{ls}"
        )
        type_actions.add_parser("ls", help="list block types with their fields")
        actions.add_parser(
            "rotate-key",
            help="encrypt every block's secrets with a new key (run where the server runs: it uses its database)",
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "rotate-key":
            self.rotate_key()
            return
        client = get_client()
        if action == "ls":
            self.list_blocks(client, options["block_type"])
        elif action == "inspect":
            self.inspect(client, options["slug"])
        elif action == "delete":
            block_type, name = block_slug(options["slug"])
            document = client.read_block_document(block_type, name)
            client.delete_block_document(document["id"])
            self.stdout.write(f"Deleted block {block_type}/{name}.")
        else:
            self.list_types(client)

    def list_blocks(self, client: OrchestratorClient, block_type: str | None) -> None:
        documents = client.read_block_documents(block_type=block_type)
        self.print_table(
            ("type", "name", "data", "updated"),
            ((row["block_type"], row["name"], data_summary(row["data"]), row["updated"]) for row in documents),
        )

    def inspect(self, client: OrchestratorClient, slug: str) -> None:
        block_type, name = block_slug(slug)
        document = client.read_block_document(block_type, name)
        self.stdout.write(f"block:    {document['block_type']}/{document['name']}")
        self.stdout.write(f"id:       {document['id']}")
        self.stdout.write(f"type:     {document['block_type']} (version {document['block_type_version']})")
        self.stdout.write(f"created:  {document['created']}")
        self.stdout.write(f"updated:  {document['updated']}")
        self.stdout.write("data:")
        for line in json.dumps(document["data"], indent=2).splitlines():
            self.stdout.write(f"  {line}")

    def list_types(self, client: OrchestratorClient) -> None:
        def fields(schema: dict[str, Any]) -> str:
            secret = set(schema.get("secret_fields", []))
            names = list(schema.get("properties", {}))
            return ", ".join(f"{name} (secret)" if name in secret else name for name in names)

        self.print_table(
            ("slug", "version", "fields", "description"),
            (
                (row["slug"], row["version"], fields(row["schema"]), row["description"])
                for row in client.read_block_types()
            ),
        )

    def rotate_key(self) -> None:
        from apps.blocks.services import encryption_key_rotate

        try:
            self.stdout.write(encryption_key_rotate())
        except OrchestratorError as exc:
            raise CommandError(exc.message) from None
