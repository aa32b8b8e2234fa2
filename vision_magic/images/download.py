"""Download an image URL for servers that cannot fetch links themselves: size cap, timeout, type check."""

from __future__ import annotations

from ..errors import SourceError

DEFAULT_INLINE_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_INLINE_TIMEOUT = 15.0


def download(url: str, label: str, max_bytes: int, timeout: float) -> bytes:
    """The bytes at ``url``, refusing non-images, bodies over ``max_bytes`` and slow servers (one line each)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "vision-magic", "Accept": "image/*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked
            ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype and not ctype.startswith("image/") and ctype != "application/octet-stream":
                raise SourceError(label, f"the URL returned {ctype}, not an image")
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise SourceError(label, f"the image is {int(length) / 1e6:.1f} MB, over the inline limit")
            data = resp.read(max_bytes + 1)
    except SourceError:
        raise
    except urllib.error.HTTPError as e:
        raise SourceError(label, f"downloading the image failed: HTTP {e.code} {e.reason}") from None
    except TimeoutError:
        raise SourceError(label, f"downloading the image took longer than {timeout:g} s") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            raise SourceError(label, f"downloading the image took longer than {timeout:g} s") from None
        raise SourceError(label, f"downloading the image failed ({reason})") from None
    if len(data) > max_bytes:
        raise SourceError(
            label,
            f"the image is over the inline limit of {max_bytes / 1e6:.1f} MB "
            "(raise inline_max_bytes in VisionMagic.endpoints)",
        )
    return data
