"""A folder under /user/<user> on HDFS, written over WebHDFS with HdfsCLI."""
from __future__ import annotations

import contextlib
import posixpath
from typing import Callable, Iterator

import requests
from hdfs import HdfsError, InsecureClient

from dataclient.errors import DataclientError
from dataclient.logfiles import BoundedReader, LogFile, open_unchanged
from dataclient.target import Listing, TempNames


def resolve_hdfs_dir(hdfs_dir: str, user: str) -> str:
    """The absolute target folder, which must lie strictly inside /user/<user>.

    The same rule guards uploads and --cleanup: a typo must never point a recursive delete at
    "/", at someone else's home, or at the home folder itself.
    """
    if not user or "/" in user or user in (".", ".."):
        raise DataclientError(f"bad HDFS user {user!r}: give a plain user name with --user")
    home = f"/user/{user}"
    if not hdfs_dir.strip():
        raise DataclientError(f"empty HDFS folder: name a folder inside {home}, e.g. logs/run1")
    if ".." in hdfs_dir.split("/"):
        raise DataclientError(f"HDFS folder {hdfs_dir!r} contains '..': name the folder "
                              f"directly, inside {home}")
    path = posixpath.normpath(posixpath.join(home, hdfs_dir))
    if not path.startswith(home + "/"):
        raise DataclientError(f"HDFS folder {hdfs_dir!r} resolves to {path}, which is not "
                              f"inside {home}: as user {user!r} name a folder under {home}")
    return path


class HdfsTarget:
    def __init__(self, client: InsecureClient, directory: str, temps: TempNames):
        self._client = client
        self.directory = directory
        self.description = f"hdfs {directory}"
        self._temps = temps

    def list(self) -> Listing:
        status = self._client.status(self.directory, strict=False)
        if status is None:
            return Listing(exists=False)
        if status["type"] != "DIRECTORY":
            raise DataclientError(f"{self.directory} exists on HDFS and is a file, not a "
                                  f"folder: choose another HDFS_DIR")
        listing = Listing(exists=True)
        for name, st in self._client.list(self.directory, status=True):
            if st["type"] != "FILE":
                listing.other.append(name)
            elif self._temps.is_temp(name):
                listing.temps.append(name)
            else:
                listing.files[name] = (st["length"], st["modificationTime"])
        return listing

    def make_folder(self) -> None:
        self._client.makedirs(self.directory)

    def remove(self, name: str) -> None:
        self._client.delete(f"{self.directory}/{name}", recursive=True)

    def put(self, lf: LogFile, on_bytes: Callable[[int], None]) -> None:
        temp = f"{self.directory}/{self._temps.temp(lf.target_name)}"
        final = f"{self.directory}/{lf.target_name}"
        try:
            with open_unchanged(lf) as f:
                self._client.write(temp, data=BoundedReader(f, lf.length, on_bytes),
                                   overwrite=True)
            size = self._client.status(temp)["length"]
            if size != lf.length:
                raise DataclientError(f"size mismatch for {final}: HDFS stored {size} bytes, "
                                      f"{lf.length} were sent; re-run to upload it again")
            self._client.set_times(temp, modification_time=lf.mtime_ms)
            # HdfsCLI's rename() cannot replace an existing file; WebHDFS RENAME can, atomically,
            # with renameoptions=OVERWRITE (HdfsCLI's raw endpoint passes the parameter through).
            # Delete-then-rename would leave a moment where Spark sees the file missing.
            self._client._rename(temp, destination=final, renameoptions="OVERWRITE")
        except BaseException:
            with contextlib.suppress(Exception):
                self._client.delete(temp)
            raise


@contextlib.contextmanager
def hdfs_errors(url: str, user: str, directory: str, url_env: str) -> Iterator[None]:
    """Turn transport and WebHDFS errors into one DataclientError line that says what to do."""
    try:
        yield
    except requests.exceptions.RequestException as e:
        reason = ("connection refused" if "refused" in str(e).lower()
                  else "timed out" if isinstance(e, requests.exceptions.Timeout)
                  else type(e).__name__)
        raise DataclientError(f"cannot reach WebHDFS at {url} ({reason}): is HDFS running? "
                              f"Point --url or ${url_env} at the NameNode's HTTP address") from e
    except HdfsError as e:
        message = " ".join(str(e).split())[:300]  # one line, even for an HTML error page
        if getattr(e, "exception", None) == "AccessControlException":
            home = f"/user/{user}"
            raise DataclientError(
                f"HDFS user {user!r} may not write {directory}: {message}. Run as the user "
                f"that owns {home}, or have an HDFS admin create it (hdfs dfs -mkdir -p {home} "
                f"&& hdfs dfs -chown {user} {home})") from e
        raise DataclientError(f"HDFS refused an operation on {directory}: {message}") from e
