"""Synthetic ground truth and dataset readers: cameras, poses, scenes, annotation files, datasets.

One job per module: ``cameras`` (intrinsics, pitch/roll, gravity), ``poses`` (SMPL-24 pose families with
joint limits), ``scene`` (people on a ground plane, exact in camera and world frames), ``annotations``
(SPIN/PyMAF npz + W-HMR fields), ``augment`` (consistent flip/rotation/box jitter/colour/occluders) and
``dataset`` (the torch Dataset), ``imu_sim`` (IMU readings for synthetic bags). Import from the
submodules; nothing heavy is imported here.
"""
