"""``field__any_of=values``: membership in a long list, sent as one array parameter.

``field__in=[...]`` writes one placeholder per value. For the due tick's chunks of 2,000
readers, several such queries a chunk, building and converting those statements cost more
CPU than PostgreSQL took to run them (7.6 ms of CPU against 3.2 ms for one query of 2,000 ids,
bench/results/tick-queries.md), and each reader's cost of the tick grew with it. On PostgreSQL this
lookup writes ``field = ANY(%s::type[])`` with the whole list as one array, which the planner
reads as an index condition just like ``IN``. Other databases get the ordinary ``IN``.
"""

from __future__ import annotations

from django.db.models import Field, ForeignObject, Lookup
from django.db.models.lookups import In


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self):
        # Each value as the field stores it (a model instance is not accepted: ids only).
        return [self.lhs.output_field.get_prep_value(value) for value in self.rhs]

    def as_sql(self, compiler, connection):
        if connection.vendor != "postgresql":
            return In(self.lhs, self.rhs).as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        element = self.lhs.output_field.cast_db_type(connection)
        return f"{lhs} = ANY(%s::{element}[])", [*lhs_params, list(self.rhs)]


# Related fields keep lookups of their own (ForeignObject does not inherit Field's).
Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)
