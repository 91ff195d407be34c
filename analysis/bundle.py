"""All analyses of one sample frame, computed on demand and sharing one preparation.

The CLI, the report and notebooks usually want several results from the same samples; preparing the
arrays once and detecting trips and charges once keeps a vehicle-year at a few seconds in total.
"""

from __future__ import annotations

from functools import cached_property

import pandas as pd

from .battery import battery as _battery
from .battery import capacity_estimates as _capacity_estimates
from .charges import charges as _charges
from .drain import drain as _drain
from .efficiency import efficiency as _efficiency
from .journal import as_trips as _journal_trips
from .journal import combine as _combine
from .prep import Prepared, prepare
from .settings import Settings
from .summary import summary as _summary
from .trips import trips as _trips


class Analysis:
    """``Analysis(df).trips``, ``.charges``, ``.drain``, ... each computed once, when first used."""

    def __init__(
        self,
        df: pd.DataFrame,
        settings: Settings | None = None,
        *,
        window: tuple[float | None, float | None] = (None, None),
        journal: pd.DataFrame | None = None,
    ) -> None:
        """``window`` (unix s, either end open) selects the trips, sessions and parked periods that
        *start* in it, whole: ``df`` should then reach a margin beyond it (see ``analysis.cli``),
        so a trip that starts at 23:50 on the last day keeps its end and its start anchor.
        ``journal``: the car's own trip log (``analysis.journal.load_journal``), preferred over
        the trips polling reconstructs wherever it has them."""
        self.settings = settings or Settings()
        self._df = df
        self.window = window
        self.journal = journal if journal is not None else pd.DataFrame()

    def _started_in(self, frame: pd.DataFrame) -> pd.DataFrame:
        lo, hi = self.window
        if (lo is None and hi is None) or frame.empty:
            return frame
        start = frame["start_ts"]
        keep = pd.Series(True, index=frame.index)
        if lo is not None:
            keep &= start >= lo
        if hi is not None:
            keep &= start <= hi
        return frame.loc[keep].reset_index(drop=True)

    @cached_property
    def prepared(self) -> Prepared:
        return prepare(self._df, self.settings)

    @property
    def samples(self) -> pd.DataFrame:
        """The cleaned samples."""
        return self.prepared.df

    @cached_property
    def _all_trips(self) -> pd.DataFrame:
        polled = _trips(self._df, self.settings, prepared=self.prepared)
        own = _journal_trips(self.journal, self.settings, self.prepared)
        return _combine(polled, own)

    @cached_property
    def routes(self) -> pd.DataFrame:
        """(vin, trip_id, start_ts, route) of the journal trips that start in the window and have
        a stored track (``route``: an encoded polyline, ``exporter.polyline``)."""
        j = self.journal
        if j.empty or "route" not in j.columns:
            return pd.DataFrame(columns=["vin", "trip_id", "start_ts", "route"])
        has = j["route"].notna() & (j["route"].astype(str) != "")
        return self._started_in(j.loc[has, ["vin", "trip_id", "start_ts", "route"]])

    @cached_property
    def _all_charges(self) -> pd.DataFrame:
        return _charges(self._df, self.settings, prepared=self.prepared)

    @cached_property
    def trips(self) -> pd.DataFrame:
        return self._started_in(self._all_trips)

    @cached_property
    def charges(self) -> pd.DataFrame:
        return self._started_in(self._all_charges)

    @cached_property
    def drain(self) -> pd.DataFrame:
        return self._started_in(
            _drain(
                self._df,
                self.settings,
                prepared=self.prepared,
                trips_df=self._all_trips,
                charges_df=self._all_charges,
            )
        )

    def efficiency(self, by: str | None = None) -> pd.DataFrame:
        return _efficiency(self.trips, self.settings, by=by)

    @cached_property
    def capacity_estimates(self) -> pd.DataFrame:
        return _capacity_estimates(self.charges)

    @cached_property
    def battery(self) -> pd.DataFrame:
        return _battery(self.charges, self.settings, nominal_kwh=self.prepared.capacity_by_vin)

    def summary(self, period: str = "month") -> pd.DataFrame:
        return _summary(self.trips, self.charges, self.settings, period=period)
