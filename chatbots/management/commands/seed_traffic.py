"""``manage.py seed_traffic``: realistic chat traffic for a demo or the scale benchmarks (COPY, fast)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from chatbots.traffic import traffic_seed


class Command(BaseCommand):
    help = (
        "Write generated conversations and messages straight into the database: into one organization "
        "(--organization demo: a month of traffic to try the inbox and the dashboard) or into new ones "
        "(--organizations 50: the benchmark's deployment). Then run `manage.py analytics_rollup --days N`."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--organization", help="slug of an existing organization (uses its bots)")
        parser.add_argument("--organizations", type=int, default=0, help="new organizations to create")
        parser.add_argument("--messages", type=int, default=20_000)
        parser.add_argument("--conversations", type=int, default=4_000)
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--peak-messages", type=int, default=0, help="messages on one launch day")
        parser.add_argument("--seed", type=int, default=19)

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        organization = None
        if options["organization"]:
            organization = Organization.objects.filter(slug=options["organization"]).first()
            if organization is None:
                raise CommandError(f"No organization with the slug {options['organization']!r}.")
        elif options["organizations"] < 1:
            raise CommandError("Give --organization SLUG or --organizations N.")
        started = time.perf_counter()
        result = traffic_seed(
            messages=options["messages"], conversations=options["conversations"], days=options["days"],
            organizations=options["organizations"], organization=organization,
            peak_messages=options["peak_messages"], seed=options["seed"],
            progress=lambda done, total: self.stdout.write(f"  {done:,}/{total:,} conversations"),
        )  # fmt: skip
        self.stdout.write(
            f"Wrote {result.messages:,} messages in {result.conversations:,} conversations of "
            f"{len(result.organizations)} organization(s), {result.bots} bot(s), {result.first_day} to "
            f"{result.last_day} in {time.perf_counter() - started:.1f} s. "
            f"Now run: manage.py analytics_rollup --days {options['days']}"
        )
