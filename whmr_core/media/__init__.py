"""whmr on photos and videos without ROS: ``whmr image``/``whmr video``, their outputs, display meshes."""
