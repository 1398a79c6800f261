"""Product images: uploads are writes to S3 (and the database), downloads are reads."""

from __future__ import annotations

from typing import Annotated, Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from brownout.middleware.fastapi import features
from examples.retail.images import MAX_IMAGE_BYTES, ImageNotFound
from examples.retail.problems import problem, unavailable
from examples.retail.service import Retail, retail
from examples.retail.store import UnknownProduct

router = APIRouter(tags=["images"])

Service = Annotated[Retail, Depends(retail)]


def _server_side(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return int(status) >= 500


@router.put(
    "/products/{product_id}/image",
    response_model=None,
    dependencies=[features(requires=["write"], components=["s3", "database"])],
)
async def upload_image(service: Service, product_id: int, request: Request) -> Any:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("image/"):
        return problem(415, "send the image with an image/* Content-Type")
    body = await request.body()
    if not body or len(body) > MAX_IMAGE_BYTES:
        return problem(413, f"an image must hold 1 to {MAX_IMAGE_BYTES} bytes")
    return await _store(service, product_id, body, content_type)


async def _store(service: Retail, product_id: int, body: bytes, content_type: str) -> Any:
    def store() -> Any:
        try:
            service.store.image_key(product_id)  # 404 before uploading anything
            key = service.images.put(product_id, body, content_type)
            service.store.set_image(product_id, key)
        except UnknownProduct:
            return problem(404, f"no product {product_id}")
        except ClientError as error:
            if _server_side(error):
                return unavailable("image storage")
            raise
        return {"id": product_id, "image": key}

    return await run_in_threadpool(store)


@router.get(
    "/products/{product_id}/image",
    response_model=None,
    dependencies=[features(requires=["read"], components=["s3"])],
)
def download_image(service: Service, product_id: int) -> Any:
    try:
        key = service.store.image_key(product_id)
        if key is None:
            return problem(404, f"product {product_id} has no image")
        body, content_type = service.images.get(key)
    except (UnknownProduct, ImageNotFound):
        return problem(404, f"no image for product {product_id}")
    except ClientError as error:
        if _server_side(error):
            return unavailable("image storage")
        raise
    return Response(body, media_type=content_type)
