"""Product images in an S3 bucket."""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

MAX_IMAGE_BYTES = 5 * 1024 * 1024


class ImageNotFound(LookupError):
    pass


class Images:
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)

    def put(self, product_id: int, body: bytes, content_type: str) -> str:
        """Store the image under a content-addressed key and return the key."""
        digest = hashlib.sha256(body).hexdigest()[:16]
        key = f"products/{product_id}/{digest}"
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return key

    def get(self, key: str) -> tuple[bytes, str]:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ImageNotFound(key) from None
            raise
        body: bytes = answer["Body"].read()
        return body, str(answer.get("ContentType") or "application/octet-stream")
